"""Generates the onnxruntime cross-check fixtures of the guest's text kernels
(tests/text_ort.rs): random TfIdfVectorizer and Tokenizer models, random RE2 patterns and skl2onnx's text
pipelines (TfidfVectorizer, CountVectorizer with bigrams, char TfidfVectorizer), run by
onnxruntime (1.32 when generated; skl2onnx 1.20, scikit-learn 1.9).

    python wasm_modules/tract_onnx_guest/tests/text_ort/generate.py

StringNormalizer needs a UTF-8 locale in onnxruntime: skl2onnx's models ask for the
default en_US.UTF-8 and fail where it is not installed, so the pipelines here set
locale="C.UTF-8".
"""
import os
import random

import msgpack
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as H

OUT = os.path.dirname(os.path.abspath(__file__))
def run(op, inputs, outs, domain="", opset=None, **attrs):
    """inputs: list of (name, np array); outs: list of (name, elemtype)"""
    def vi(n,a):
        et = {np.dtype(object):T.STRING, np.dtype('int64'):T.INT64, np.dtype('int32'):T.INT32, np.dtype('float32'):T.FLOAT, np.dtype('float64'):T.DOUBLE}[a.dtype]
        return H.make_tensor_value_info(n, et, None)
    node = H.make_node(op, [n for n,_ in inputs], [n for n,_ in outs], domain=domain, **attrs)
    g = H.make_graph([node], "g", [vi(n,a) for n,a in inputs], [H.make_tensor_value_info(n, t, None) for n,t in outs])
    ops = [H.make_opsetid("", 21)]
    if domain: ops.append(H.make_opsetid(domain, opset or 1))
    m = H.make_model(g, opset_imports=ops); m.ir_version = 10
    try:
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        r = s.run(None, dict(inputs))
        return [(x.shape, x.tolist()) for x in r]
    except Exception as e:
        return "ERR: " + str(e).split('\n')[0][:300]
def S(*a): return np.array(list(a), dtype=object)

def main_tfidf():
    random.seed(7)
    cases = []
    V = ["a","b","c","#","é","",]
    for t in range(160):
        strs = random.random() < 0.5
        maxg = random.randint(1, 4)
        ming = random.randint(1, maxg)
        nsizes = maxg + random.randint(0, 1)
        counts, pool, total = [], [], 0
        for n in range(1, nsizes + 1):
            counts.append(len(pool))
            grams = set()
            for _ in range(random.randint(0, 6)):
                grams.add(tuple(random.choice(V) if strs else random.randint(0, 4) for _ in range(n)))
            grams = sorted(grams)
            for g in grams: pool.extend(g)
            total += len(grams)
        if not pool: continue
        idx = list(range(total)); random.shuffle(idx)
        if random.random() < 0.3: idx = [random.randint(0, total) for _ in range(total)]
        mode = random.choice(["TF","IDF","TFIDF"])
        weights = [float(random.randint(1, 9)) / 4 for _ in range(total)] if random.random() < 0.7 else []
        skip = random.randint(0, 3)
        N = random.choice([0, 1, 2, 3]); C = random.randint(0, 9)
        if strs: x = np.array([random.choice(V) for _ in range(max(N,1) * C)], dtype=object)
        else: x = np.array([random.randint(0, 4) for _ in range(max(N,1) * C)], dtype=np.int64)
        shape = [C] if N == 0 else [N, C]
        x = x.reshape(shape)
        attrs = dict(mode=mode, min_gram_length=ming, max_gram_length=maxg, max_skip_count=skip, ngram_counts=counts, ngram_indexes=idx)
        if weights: attrs["weights"] = weights
        if strs: attrs["pool_strings"] = pool
        else: attrs["pool_int64s"] = pool
        r = run("TfIdfVectorizer", [("x", x)], [("y", T.FLOAT)], **attrs)
        if isinstance(r, str):
            print("ERR", r[:100]); continue
        (oshape, y), = r
        y = np.array(y, dtype=np.float32).ravel().tolist()
        cases.append(dict(strs=strs, mode=mode, ming=ming, maxg=maxg, skip=skip, counts=counts, idx=idx, weights=weights,
            pool=[str(p) for p in pool] if strs else pool, x=[str(v) for v in x.ravel()] if strs else [int(v) for v in x.ravel()], shape=shape, oshape=list(oshape), y=y))
    open(os.path.join(OUT, "tfidf.msgpack"), "wb").write(msgpack.packb(cases))
    print(len(cases))

def main_tokenizer():
    random.seed(11)
    alphabet = list("abcXY Z09_ \t\n.,;!?-'\"éÉßİ日本Δ") + ["\U0001F600", "\u00a0", "\u2003", "  ", "\r\n"]
    cfgs = [dict(tokenexp="[a-zA-Z0-9_]+"), dict(tokenexp="."), dict(tokenexp="\\w\\w+"), dict(tokenexp="\\b\\w\\w+\\b"),
            dict(tokenexp="[^ ]+"), dict(tokenexp="\\S+"), dict(tokenexp="a|ab|abc"), dict(tokenexp="(?i)[a-z]+"), dict(tokenexp="\\pL+"),
            dict(separators=[" "]), dict(separators=["\\s+", ","]), dict(separators=[""]), dict(separators=[",|;", "a"]), dict(separators=["[^a-z]"]),
            dict(tokenexp="[\\W_]+"), dict(tokenexp="[[:punct:]]"), dict(tokenexp="\\d+|[a-z]+")]
    cases = []
    for cfg in cfgs:
        for mark in (0, 1):
            for minc in (1, 2):
                if minc == 2 and (cfg.get("tokenexp") == "." or cfg.get("separators") == [""]): continue
                texts = ["".join(random.choice(alphabet) for _ in range(random.randint(0, 14))) for _ in range(6)]
                x = S(*texts).reshape(random.choice([[6], [2, 3]]))
                r = run("Tokenizer", [("x", x)], [("y", T.STRING)], domain="com.microsoft", mark=mark, mincharnum=minc, pad_value="#", **cfg)
                if isinstance(r, str): print("ERR", cfg, r[:200]); continue
                (oshape, y), = r
                y = np.array(y, dtype=object).ravel().tolist()
                cases.append(dict(cfg_sep=cfg.get("separators"), cfg_exp=cfg.get("tokenexp"), mark=mark, minc=minc, x=texts, shape=list(x.shape), oshape=list(oshape), y=y))
    open(os.path.join(OUT, "tokenizer.msgpack"), "wb").write(msgpack.packb(cases))
    print(len(cases))

def main_pipelines():
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import StringTensorType
    corpus = np.array(["This is the first document.", "This document is the second document.", "And this is the third one.", "Is this the first document?"])
    models = {}
    for name, est in [("TfidfVectorizer_word", TfidfVectorizer()), ("CountVectorizer_word", CountVectorizer(ngram_range=(1, 2))), ("TfidfVectorizer_char", TfidfVectorizer(analyzer="char", ngram_range=(1, 3)))]:
        est.fit(corpus)
        models[name] = to_onnx(est, initial_types=[("input", StringTensorType([None, 1]))])
    random.seed(3)
    texts = ["This is the first document.", "", "   ", "ÉTÉ Été été the THE the", "document document?? second-document",
     "日本語 the 42 numbers 3.14 and_underscores", "Straße STRASSE İstanbul", "\U0001F600 emoji first\tone\nthird", "#", "a b c d e f",
     "is this the first document", "one two three one two three one"]
    for _ in range(20):
        texts.append(" ".join(random.choice(["the","first","document","is","this","one","third","second","and","x","É","?!", "Document", "FIRST"]) for _ in range(random.randint(0,12))))
    cases = []
    for f in models:
        m = models[f]
        for n in m.graph.node:
            if n.op_type == "StringNormalizer": n.attribute.append(H.make_attribute("locale", "C.UTF-8"))
        for name in ["normalized", "tokenized", "output"]:
            m.graph.output.append(onnx.ValueInfoProto(name=name))
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        x = np.array(texts, dtype=object).reshape(-1, 1)
        outs = dict(zip([o.name for o in s.get_outputs()], s.run(None, {"input": x})))
        nodes = {n.op_type: {a.name: H.get_attribute_value(a) for a in n.attribute} for n in m.graph.node}
        def dec(v):
            if isinstance(v, bytes): return v.decode()
            if isinstance(v, list): return [dec(i) for i in v]
            return v
        nodes = {k: {a: dec(b) for a, b in v.items()} for k, v in nodes.items() if k in ("StringNormalizer","Tokenizer","TfIdfVectorizer")}
        cases.append(dict(name=f, texts=texts, nodes=nodes, normalized=outs["normalized"].ravel().tolist(), norm_shape=list(outs["normalized"].shape),
            tokenized=outs["tokenized"].ravel().tolist(), tok_shape=list(outs["tokenized"].shape), output=outs["output"].astype(np.float64).ravel().tolist(), out_shape=list(outs["output"].shape)))
        print(f, outs["tokenized"].shape, outs["output"].shape)
    open(os.path.join(OUT, "pipelines.msgpack"), "wb").write(msgpack.packb(cases))


def main_patterns():
    """Random RE2 patterns, as tokenexp, as a separator and for RegexFullMatch."""
    random.seed(5)
    atoms = ["a", "b", ".", "\\w", "\\W", "\\d", "\\s", "\\S", "\\b", "\\B", "^", "$", "[a-c]", "[^a]", "[\\w-]", "[\\W]", "[[:alpha:]]", "[[]", "[]a]", "[a&&b]", "[a--b]", "[~~]", "(", ")", "|", "*", "+", "?", "{2}", "{1,3}", "(?i)", "(?:", "é", "\\pL", "\\p{Greek}", "[", "]", "{", "}", "\\x{41}", "-", "&", "~", "A", " ", "[\\s\\d]", "[^\\s]", "\\D+"]
    texts = ["", "abc", "a b\nc", "éÉ日本 42_x", "aaaa bbbb", "[]-&~{}", "\U0001F600a", "AbA Ab\u000b\u00a0x", "Δαβ γ 1 2 3"]
    cases = []
    for i in range(700):
        p = "".join(random.choice(atoms) for _ in range(random.randint(1, 5)))
        mode = random.choice(["exp", "sep"])
        kw = dict(tokenexp=p) if mode == "exp" else dict(separators=[p, " "])
        r = run("Tokenizer", [("x", S(*texts))], [("y", T.STRING)], domain="com.microsoft", mark=0, mincharnum=1, pad_value="#", **kw)
        if isinstance(r, str):
            cases.append(dict(p=p, mode=mode, err=True, y=[], oshape=[]))
        else:
            (oshape, y), = r
            cases.append(dict(p=p, mode=mode, err=False, y=np.array(y, dtype=object).ravel().tolist(), oshape=list(oshape)))
        r = run("RegexFullMatch", [("x", S(*texts))], [("y", T.BOOL)], pattern=p)
        cases[-1]["full"] = None if isinstance(r, str) else [bool(b) for b in r[0][1]]
    open(os.path.join(OUT, "patterns.msgpack"), "wb").write(msgpack.packb(dict(texts=texts, cases=cases)))


if __name__ == "__main__":
    main_tfidf()
    main_tokenizer()
    main_pipelines()
    main_patterns()
