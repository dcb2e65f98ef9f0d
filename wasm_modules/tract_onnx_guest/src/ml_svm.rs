//! ONNX-ML's support vector machines (`SVMRegressor`, `SVMClassifier`) checked and
//! evaluated as onnxruntime evaluates them, without tract (tested natively).
//!
//! Kernels: LINEAR `x.v`, POLY `(gamma x.v + coef0)^degree`, RBF `exp(-gamma |x-v|^2)`,
//! SIGMOID `tanh(gamma x.v + coef0)`. The classifier is libsvm's one-against-one: a
//! decision value per pair of classes, a vote per pair, the label by most votes (the
//! lowest class on ties); with `prob_a`/`prob_b`, each pair's decision value goes
//! through Platt's sigmoid and the pairwise probabilities are coupled by libsvm's
//! iterative method (`multiclass_probability`), in single precision as onnxruntime.

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    Linear,
    Poly { gamma: f32, coef0: f32, degree: f32 },
    Rbf { gamma: f32 },
    Sigmoid { gamma: f32, coef0: f32 },
}

impl Kernel {
    /// `kernel_type` and `kernel_params` ([gamma, coef0, degree], or none: all 0).
    pub fn parse(kind: &str, params: &[f32]) -> Result<Kernel, String> {
        let (gamma, coef0, degree) = match params {
            [] => (0.0, 0.0, 0.0),
            [g, c, d] => (*g, *c, *d),
            _ => return Err(format!("kernel_params has {} values, not 3 (gamma, coef0, degree)", params.len())),
        };
        Ok(match kind {
            "LINEAR" => Kernel::Linear,
            "POLY" => Kernel::Poly { gamma, coef0, degree },
            "RBF" => Kernel::Rbf { gamma },
            "SIGMOID" => Kernel::Sigmoid { gamma, coef0 },
            other => return Err(format!("kernel_type is '{other}', not one of LINEAR, POLY, RBF and SIGMOID")),
        })
    }

    pub fn eval(&self, x: &[f32], v: &[f32]) -> f32 {
        let dot = || x.iter().zip(v).fold(0f32, |acc, (a, b)| a.mul_add(*b, acc));
        match *self {
            Kernel::Linear => dot(),
            Kernel::Poly { gamma, coef0, degree } => dot().mul_add(gamma, coef0).powf(degree),
            Kernel::Rbf { gamma } => (-gamma * x.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()).exp(),
            Kernel::Sigmoid { gamma, coef0 } => dot().mul_add(gamma, coef0).tanh(),
        }
    }
}

/// `SVMRegressor`: with support vectors, `sum_j coef_j K(x, sv_j) + rho`; without
/// (`n_supports` 0), the kernel of `x` and the coefficients, plus `rho`. One-class
/// models answer the sign as 1 or -1.
#[derive(Debug, Clone, PartialEq)]
pub struct Regressor {
    pub kernel: Kernel,
    /// `n_supports` rows of `features`, or none.
    pub support: Vec<f32>,
    pub coefficients: Vec<f32>,
    pub rho: f32,
    pub one_class: bool,
    pub features: usize,
}

impl Regressor {
    pub fn build(
        kernel: Kernel,
        n_supports: i64,
        support: &[f32],
        coefficients: &[f32],
        rho: &[f32],
        one_class: i64,
    ) -> Result<Regressor, String> {
        if rho.len() != 1 {
            return Err(format!("rho has {} values, not 1", rho.len()));
        }
        let features = match n_supports {
            0 if support.is_empty() && !coefficients.is_empty() => coefficients.len(),
            n if n > 0 && coefficients.len() as i64 == n && !support.is_empty() && support.len() as i64 % n == 0 => {
                (support.len() as i64 / n) as usize
            }
            n => {
                return Err(format!(
                    "n_supports {n} with {} coefficients and {} support vector values",
                    coefficients.len(),
                    support.len()
                ))
            }
        };
        if !matches!(one_class, 0 | 1) {
            return Err(format!("one_class is {one_class}, not 0 or 1"));
        }
        Ok(Regressor {
            kernel,
            support: support.to_vec(),
            coefficients: coefficients.to_vec(),
            rho: rho[0],
            one_class: one_class == 1,
            features,
        })
    }

    pub fn eval(&self, x: &[f32]) -> Vec<f32> {
        x.chunks(self.features)
            .map(|row| {
                let mut s = if self.support.is_empty() {
                    self.kernel.eval(row, &self.coefficients)
                } else {
                    // Fused multiply-adds in order, as onnxruntime's GEMM sums them.
                    self.support
                        .chunks(self.features)
                        .zip(&self.coefficients)
                        .fold(0f32, |acc, (sv, c)| c.mul_add(self.kernel.eval(row, sv), acc))
                };
                s += self.rho;
                if self.one_class {
                    s = if s > 0.0 { 1.0 } else { -1.0 };
                }
                s
            })
            .collect()
    }
}

/// `SVMClassifier` with support vectors (libsvm's SVC), integer labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    pub kernel: Kernel,
    pub classes: usize,
    /// First support vector of each class, and their counts.
    starts: Vec<usize>,
    counts: Vec<usize>,
    vectors: usize,
    support: Vec<f32>,
    /// `classes - 1` rows of `vectors` dual coefficients.
    coefficients: Vec<f32>,
    /// One per pair of classes.
    rho: Vec<f32>,
    prob_a: Vec<f32>,
    prob_b: Vec<f32>,
    pub features: usize,
}

impl Classifier {
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        kernel: Kernel,
        classes: usize,
        vectors_per_class: &[i64],
        support: &[f32],
        coefficients: &[f32],
        rho: &[f32],
        prob_a: &[f32],
        prob_b: &[f32],
    ) -> Result<Classifier, String> {
        if classes < 2 {
            return Err(format!("{classes} class label(s), fewer than 2"));
        }
        if vectors_per_class.len() != classes {
            return Err(format!("vectors_per_class has {} entries for {classes} classes", vectors_per_class.len()));
        }
        if let Some(v) = vectors_per_class.iter().find(|&&v| v < 0) {
            return Err(format!("vectors_per_class holds {v}"));
        }
        let counts: Vec<usize> = vectors_per_class.iter().map(|&v| v as usize).collect();
        let vectors: usize = counts.iter().sum();
        let starts = counts.iter().scan(0, |s, &c| Some(std::mem::replace(s, *s + c))).collect();
        if vectors == 0 || support.is_empty() || support.len() % vectors != 0 {
            return Err(format!("{} support vector values for {vectors} support vectors", support.len()));
        }
        if coefficients.len() != (classes - 1) * vectors {
            return Err(format!(
                "{} coefficients, not (classes - 1) x vectors = {}",
                coefficients.len(),
                (classes - 1) * vectors
            ));
        }
        let pairs = classes * (classes - 1) / 2;
        if rho.len() != pairs {
            return Err(format!("rho has {} values for {pairs} pairs of classes", rho.len()));
        }
        if prob_a.len() != prob_b.len() || !(prob_a.is_empty() || prob_a.len() == pairs) {
            return Err(format!(
                "prob_a and prob_b have {} and {} values for {pairs} pairs of classes",
                prob_a.len(),
                prob_b.len()
            ));
        }
        Ok(Classifier {
            kernel,
            classes,
            starts,
            counts,
            vectors,
            features: support.len() / vectors,
            support: support.to_vec(),
            coefficients: coefficients.to_vec(),
            rho: rho.to_vec(),
            prob_a: prob_a.to_vec(),
            prob_b: prob_b.to_vec(),
        })
    }

    /// The number of scores per row: the class probabilities, or the pairs' decision
    /// values (two for two classes: `[-d, d]`).
    pub fn scores(&self) -> usize {
        if !self.prob_a.is_empty() {
            self.classes
        } else if self.classes == 2 {
            2
        } else {
            self.classes * (self.classes - 1) / 2
        }
    }

    /// The class index and the scores of each row.
    pub fn eval(&self, x: &[f32]) -> (Vec<usize>, Vec<f32>) {
        let (c, n) = (self.classes, self.vectors);
        let mut labels = vec![];
        let mut out = vec![];
        let mut kernels = vec![0f32; n];
        for row in x.chunks(self.features) {
            for (k, sv) in kernels.iter_mut().zip(self.support.chunks(self.features)) {
                *k = self.kernel.eval(row, sv);
            }
            let mut votes = vec![0usize; c];
            let mut decisions = Vec::with_capacity(self.rho.len());
            for i in 0..c {
                for j in i + 1..c {
                    let (si, sj) = (self.starts[i], self.starts[j]);
                    let ci = &self.coefficients[(j - 1) * n + si..][..self.counts[i]];
                    let cj = &self.coefficients[i * n + sj..][..self.counts[j]];
                    // Single-precision products summed in double, as onnxruntime sums them.
                    let mut sum = 0f64;
                    for (a, k) in ci.iter().zip(&kernels[si..]) {
                        sum += (a * k) as f64;
                    }
                    for (a, k) in cj.iter().zip(&kernels[sj..]) {
                        sum += (a * k) as f64;
                    }
                    sum += self.rho[decisions.len()] as f64;
                    votes[if sum > 0.0 { i } else { j }] += 1;
                    decisions.push(sum as f32);
                }
            }
            // The first class with the most votes.
            let best = votes.iter().enumerate().fold(0, |b, (k, &v)| if v > votes[b] { k } else { b });
            labels.push(best);
            if !self.prob_a.is_empty() {
                let mut r = vec![0f32; c * c];
                let mut index = 0;
                for i in 0..c {
                    for j in i + 1..c {
                        let p = platt(decisions[index], self.prob_a[index], self.prob_b[index]).clamp(1e-7, 1.0 - 1e-7);
                        r[i * c + j] = p;
                        r[j * c + i] = 1.0 - p;
                        index += 1;
                    }
                }
                out.extend(multiclass_probability(c, &r));
            } else if c == 2 {
                out.extend([-decisions[0], decisions[0]]);
            } else {
                out.extend(decisions);
            }
        }
        (labels, out)
    }
}

fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 {
        1.0 - e
    } else {
        e
    }
}

/// libsvm's `sigmoid_predict`, as onnxruntime writes it.
fn platt(decision: f32, a: f32, b: f32) -> f32 {
    1.0 - logistic(decision * a + b)
}

/// libsvm's coupling of pairwise probabilities `r` (c x c) into class probabilities.
fn multiclass_probability(c: usize, r: &[f32]) -> Vec<f32> {
    let mut q = vec![0f32; c * c];
    let mut qp = vec![0f32; c];
    let mut p = vec![1.0 / c as f32; c];
    let eps = 0.005 / c as f32;
    for i in 0..c {
        for j in 0..i {
            q[i * c + i] += r[j * c + i] * r[j * c + i];
            q[i * c + j] = q[j * c + i];
        }
        for j in i + 1..c {
            q[i * c + i] += r[j * c + i] * r[j * c + i];
            q[i * c + j] = -r[j * c + i] * r[i * c + j];
        }
    }
    for _ in 0..100 {
        let mut pqp = 0f32;
        for i in 0..c {
            qp[i] = 0.0;
            for j in 0..c {
                qp[i] += q[i * c + j] * p[j];
            }
            pqp += p[i] * qp[i];
        }
        let max_error = qp.iter().fold(0f32, |m, &v| m.max((v - pqp).abs()));
        if max_error < eps {
            break;
        }
        for i in 0..c {
            let diff = (-qp[i] + pqp) / q[i * c + i];
            p[i] += diff;
            pqp = (pqp + diff * (diff * q[i * c + i] + 2.0 * qp[i])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..c {
                qp[j] = (qp[j] + diff * q[i * c + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels() {
        let (x, v) = ([1.0, 2.0], [3.0, -1.0]);
        assert_eq!(Kernel::parse("LINEAR", &[]).unwrap().eval(&x, &v), 1.0);
        assert_eq!(Kernel::parse("POLY", &[2.0, 1.0, 3.0]).unwrap().eval(&x, &v), 27.0);
        assert_eq!(Kernel::parse("RBF", &[0.5, 0.0, 0.0]).unwrap().eval(&x, &v), (-6.5f32).exp());
        assert!(Kernel::parse("RBF", &[0.5]).unwrap_err().contains("not 3"));
    }

    #[test]
    fn regressor_with_and_without_support_vectors() {
        let r = Regressor::build(Kernel::Linear, 2, &[1.0, 0.0, 0.0, 1.0], &[2.0, 3.0], &[0.5], 0).unwrap();
        assert_eq!(r.eval(&[1.0, 1.0, 2.0, 0.0]), vec![5.5, 4.5]);
        let r = Regressor::build(Kernel::Linear, 0, &[], &[2.0, 3.0], &[0.5], 1).unwrap();
        assert_eq!(r.eval(&[-1.0, 0.0]), vec![-1.0]);
        assert!(Regressor::build(Kernel::Linear, 3, &[1.0, 0.0], &[2.0, 3.0], &[0.5], 0).is_err());
    }

    #[test]
    fn classifier_votes_and_probabilities_sum_to_one() {
        // Three classes, one support vector each, on one feature.
        let c = Classifier::build(
            Kernel::Linear,
            3,
            &[1, 1, 1],
            &[-1.0, 0.0, 1.0],
            &[1.0, 1.0, 1.0, -1.0, -1.0, -1.0],
            &[0.0, 0.0, 0.0],
            &[-1.0, -1.0, -1.0],
            &[0.0, 0.0, 0.0],
        )
        .unwrap();
        let (labels, p) = c.eval(&[-2.0]);
        assert_eq!(labels.len(), 1);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(Classifier::build(Kernel::Linear, 3, &[1, 1], &[0.0], &[], &[], &[], &[]).is_err());
    }
}
