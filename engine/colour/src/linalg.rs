//! Small dense matrices in `f64`: just what the estimators and fits need.
//!
//! The matrices here are at most 81×190 (spectral grid × training samples), so
//! a plain row-major `Vec<f64>` and textbook algorithms (Gaussian elimination
//! with partial pivoting) are both fast enough and easy to check.

use std::fmt;

/// A row-major dense matrix.
#[derive(Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl fmt::Debug for Matrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Matrix {}x{} [", self.rows, self.cols)?;
        for r in 0..self.rows {
            writeln!(f, "  {:?}", self.row(r))?;
        }
        write!(f, "]")
    }
}

/// A square system with no unique solution (a pivot vanished).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("singular {n}x{n} matrix (pivot {pivot:e} at column {column})")]
pub struct Singular {
    /// Size of the system.
    pub n: usize,
    /// Column whose best pivot was (near) zero.
    pub column: usize,
    /// The pivot found.
    pub pivot: f64,
}

impl Matrix {
    /// A `rows × cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// The `n × n` identity.
    pub fn identity(n: usize) -> Self {
        let mut m = Matrix::zeros(n, n);
        for i in 0..n {
            m[(i, i)] = 1.0;
        }
        m
    }

    /// A matrix from rows of equal length (`None` if they differ or there are none).
    pub fn from_rows(rows: &[Vec<f64>]) -> Option<Self> {
        let cols = rows.first()?.len();
        if rows.iter().any(|r| r.len() != cols) {
            return None;
        }
        Some(Matrix {
            rows: rows.len(),
            cols,
            data: rows.concat(),
        })
    }

    /// A 3×3 matrix from an array of rows.
    pub fn from_3x3(m: [[f64; 3]; 3]) -> Self {
        Matrix {
            rows: 3,
            cols: 3,
            data: m.iter().flatten().copied().collect(),
        }
    }

    /// The matrix as an array of rows, if it is 3×3.
    pub fn to_3x3(&self) -> Option<[[f64; 3]; 3]> {
        if self.rows != 3 || self.cols != 3 {
            return None;
        }
        let mut out = [[0.0; 3]; 3];
        for (r, row) in out.iter_mut().enumerate() {
            row.copy_from_slice(self.row(r));
        }
        Some(out)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// One row as a slice.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// The transpose.
    pub fn t(&self) -> Matrix {
        let mut out = Matrix::zeros(self.cols, self.rows);
        for r in 0..self.rows {
            for c in 0..self.cols {
                out[(c, r)] = self[(r, c)];
            }
        }
        out
    }

    /// The product `self · rhs`. Panics only on a shape mismatch, which is a
    /// programming error inside this crate (shapes are fixed by construction).
    pub fn mul(&self, rhs: &Matrix) -> Matrix {
        assert_eq!(self.cols, rhs.rows, "matrix shapes do not chain");
        let mut out = Matrix::zeros(self.rows, rhs.cols);
        for r in 0..self.rows {
            for k in 0..self.cols {
                let a = self[(r, k)];
                if a == 0.0 {
                    continue;
                }
                let src = rhs.row(k);
                let dst = &mut out.data[r * rhs.cols..(r + 1) * rhs.cols];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += a * s;
                }
            }
        }
        out
    }

    /// The product `self · v`.
    pub fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        assert_eq!(self.cols, v.len(), "matrix and vector do not chain");
        (0..self.rows)
            .map(|r| self.row(r).iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    }

    /// `self + rhs`, element by element.
    pub fn add(&self, rhs: &Matrix) -> Matrix {
        assert_eq!((self.rows, self.cols), (rhs.rows, rhs.cols));
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self
                .data
                .iter()
                .zip(&rhs.data)
                .map(|(a, b)| a + b)
                .collect(),
        }
    }

    /// `s · self`.
    pub fn scale(&self, s: f64) -> Matrix {
        Matrix {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|a| a * s).collect(),
        }
    }

    /// The trace (sum of the diagonal of the square part).
    pub fn trace(&self) -> f64 {
        (0..self.rows.min(self.cols)).map(|i| self[(i, i)]).sum()
    }

    /// Solves `self · X = rhs` for `X` by Gaussian elimination with partial
    /// pivoting. `self` must be square; `rhs` may have any number of columns.
    pub fn solve(&self, rhs: &Matrix) -> Result<Matrix, Singular> {
        assert_eq!(self.rows, self.cols, "solve needs a square matrix");
        assert_eq!(self.rows, rhs.rows, "right-hand side has the wrong height");
        let n = self.rows;
        let m = rhs.cols;
        let mut a = self.clone();
        let mut b = rhs.clone();
        let scale = self.data.iter().fold(0.0_f64, |s, v| s.max(v.abs()));
        let tiny = scale * 1e-14 * n as f64;
        for col in 0..n {
            let (piv_row, piv) =
                (col..n)
                    .map(|r| (r, a[(r, col)]))
                    .fold((col, 0.0_f64), |best, (r, v)| {
                        if v.abs() > best.1.abs() { (r, v) } else { best }
                    });
            if piv.abs() <= tiny || !piv.is_finite() {
                return Err(Singular {
                    n,
                    column: col,
                    pivot: piv,
                });
            }
            if piv_row != col {
                for c in 0..n {
                    a.data.swap(col * n + c, piv_row * n + c);
                }
                for c in 0..m {
                    b.data.swap(col * m + c, piv_row * m + c);
                }
            }
            for r in col + 1..n {
                let f = a[(r, col)] / piv;
                if f == 0.0 {
                    continue;
                }
                for c in col..n {
                    a[(r, c)] -= f * a[(col, c)];
                }
                for c in 0..m {
                    b[(r, c)] -= f * b[(col, c)];
                }
            }
        }
        for col in (0..n).rev() {
            for c in 0..m {
                let mut s = b[(col, c)];
                for k in col + 1..n {
                    s -= a[(col, k)] * b[(k, c)];
                }
                b[(col, c)] = s / a[(col, col)];
            }
        }
        Ok(b)
    }

    /// The inverse of a square matrix.
    pub fn inverse(&self) -> Result<Matrix, Singular> {
        self.solve(&Matrix::identity(self.rows))
    }
}

impl std::ops::Index<(usize, usize)> for Matrix {
    type Output = f64;
    fn index(&self, (r, c): (usize, usize)) -> &f64 {
        &self.data[r * self.cols + c]
    }
}

impl std::ops::IndexMut<(usize, usize)> for Matrix {
    fn index_mut(&mut self, (r, c): (usize, usize)) -> &mut f64 {
        &mut self.data[r * self.cols + c]
    }
}

/// `m · v` for a 3×3 array matrix.
pub fn mul3(m: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// `a · b` for 3×3 array matrices.
pub fn mul33(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (r, row) in out.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[r][k] * b[k][c]).sum();
        }
    }
    out
}

/// The inverse of a 3×3 array matrix.
pub fn inv3(m: &[[f64; 3]; 3]) -> Result<[[f64; 3]; 3], Singular> {
    Matrix::from_3x3(*m)
        .inverse()
        .map(|i| i.to_3x3().unwrap_or([[0.0; 3]; 3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_recovers_a_known_solution() {
        let a = Matrix::from_rows(&[
            vec![0.0, 2.0, 1.0],
            vec![1.0, -1.0, 0.5],
            vec![3.0, 0.0, -2.0],
        ])
        .unwrap();
        let x = Matrix::from_rows(&[vec![1.0, 4.0], vec![-2.0, 0.5], vec![0.25, 3.0]]).unwrap();
        let b = a.mul(&x);
        let got = a.solve(&b).unwrap();
        for r in 0..3 {
            for c in 0..2 {
                assert!((got[(r, c)] - x[(r, c)]).abs() < 1e-12);
            }
        }
        let i = a.mul(&a.inverse().unwrap());
        assert!((i.trace() - 3.0).abs() < 1e-12);
    }

    #[test]
    fn singular_is_an_error_not_a_panic() {
        let a = Matrix::from_rows(&[vec![1.0, 2.0], vec![2.0, 4.0]]).unwrap();
        let e = a.inverse().unwrap_err();
        assert_eq!(e.n, 2);
        assert!(inv3(&[[0.0; 3]; 3]).is_err());
    }

    #[test]
    fn ragged_rows_are_refused() {
        assert!(Matrix::from_rows(&[vec![1.0], vec![1.0, 2.0]]).is_none());
        assert!(Matrix::from_rows(&[]).is_none());
    }
}
