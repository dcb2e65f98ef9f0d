// onnxruntime-web (wasm backend, one thread) in Node, driven by scripts/bench.py over a pipe.
//
// Frames, both ways: a u32 little-endian header length, a JSON header, then the header's
// tensors' bytes back to back (each tensor {name, dtype, shape, nbytes}). Requests:
//   {op: "version"}                              -> {ok, versions}
//   {op: "load", model: path, inputs: [tensor]}  -> {ok, ms}; the inputs are kept as feeds
//   {op: "run", outputs: bool}                   -> {ok, ms[, outputs: [tensor]] + bytes}
//   {op: "close"}                                -> {ok}
// Failures answer {ok: false, error}. `ms` is timed here, around session.run alone, so
// that the pipe is not part of it.
import { performance } from "node:perf_hooks";
import * as ort from "onnxruntime-web";

ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;
ort.env.logLevel = "error";

const ARRAYS = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

class Reader {
  constructor(stream) {
    this.chunks = [];
    this.have = 0;
    this.ended = false;
    this.waiter = null;
    stream.on("data", (c) => {
      this.chunks.push(c);
      this.have += c.length;
      this.wake();
    });
    stream.on("end", () => {
      this.ended = true;
      this.wake();
    });
  }

  wake() {
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }

  // Concatenates once per read, not per chunk: a 64 MiB feed arrives in thousands of chunks.
  async read(n) {
    while (this.have < n) {
      if (this.ended) return null;
      await new Promise((resolve) => {
        this.waiter = resolve;
      });
    }
    const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.have);
    const rest = buf.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.have = rest.length;
    return buf.subarray(0, n);
  }
}

function send(header, payloads = []) {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  process.stdout.write(Buffer.concat([len, json, ...payloads]));
}

function tensorOf(spec, bytes) {
  const Array_ = ARRAYS[spec.dtype];
  if (!Array_) throw new Error(`unsupported dtype ${spec.dtype}`);
  // A copy: the frame's bytes may not be aligned for the typed array.
  const data = new Array_(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + spec.nbytes));
  return new ort.Tensor(spec.dtype, data, spec.shape);
}

let session = null;
let feeds = null;

async function handle(header, body) {
  switch (header.op) {
    case "version":
      return [{ ok: true, versions: { ...ort.env.versions, node: process.versions.node } }];
    case "load": {
      feeds = {};
      let offset = 0;
      for (const spec of header.inputs) {
        feeds[spec.name] = tensorOf(spec, body.subarray(offset, offset + spec.nbytes));
        offset += spec.nbytes;
      }
      const t0 = performance.now();
      session = await ort.InferenceSession.create(header.model, {
        executionProviders: ["wasm"],
        graphOptimizationLevel: "all",
        logSeverityLevel: 3, // not the light models' unused-initializer warnings
      });
      return [{ ok: true, ms: performance.now() - t0 }];
    }
    case "run": {
      if (!session) throw new Error("no model loaded");
      const t0 = performance.now();
      const results = await session.run(feeds);
      const ms = performance.now() - t0;
      if (!header.outputs) return [{ ok: true, ms }];
      const outputs = [];
      const payloads = [];
      for (const name of session.outputNames) {
        const t = results[name];
        const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
        outputs.push({ name, dtype: t.type, shape: t.dims, nbytes: bytes.length });
        payloads.push(bytes);
      }
      return [{ ok: true, ms, outputs }, payloads];
    }
    case "close":
      if (session) await session.release();
      session = null;
      feeds = null;
      return [{ ok: true }];
    default:
      throw new Error(`unknown op ${header.op}`);
  }
}

const reader = new Reader(process.stdin);
for (;;) {
  const len = await reader.read(4);
  if (len === null) break;
  const raw = await reader.read(len.readUInt32LE(0));
  if (raw === null) break;
  const header = JSON.parse(raw.toString("utf8"));
  const size = (header.inputs ?? []).reduce((sum, t) => sum + t.nbytes, 0);
  const body = size ? await reader.read(size) : Buffer.alloc(0);
  if (body === null) break;
  try {
    const [reply, payloads] = await handle(header, body);
    send(reply, payloads);
  } catch (e) {
    send({ ok: false, error: String(e?.message ?? e) });
  }
}
