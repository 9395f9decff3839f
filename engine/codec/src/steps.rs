//! The quantiser of one picture: one or two tables of a step per subband,
//! and for every slice the table it uses.
//!
//! Coefficients are integers, so a dead-zone quantiser sends a whole
//! magnitude class to zero each time a step passes a whole number; on smooth
//! content that moves a frame's size by 10–30% at once, and no single table
//! lands within a few percent of a target. Two neighbouring tables, one just
//! above the target and one just below, mixed slice by slice, do (JPEG XS
//! refines per precinct for the same reason).

use super::entropy::STEP_ONE;

/// Entries per table in the GPU's step buffer; [`super::MAX_LEVELS`] needs 25.
pub const GPU_TABLE_STRIDE: usize = 32;
/// Most tables a picture uses.
pub const MAX_TABLES: usize = 2;
// `entropy_common.wgsl` reads the slice's table index at `SELECT_AT = 64`.
const _: () = assert!(MAX_TABLES * GPU_TABLE_STRIDE == 64);

/// Steps per subband (in sixteenths, see [`STEP_ONE`]) and the table of each slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steps {
    tables: Vec<Vec<u32>>,
    select: Vec<u8>,
}

impl Steps {
    /// One table for every slice.
    pub fn uniform(table: Vec<u32>, slices: u32) -> Self {
        Steps {
            tables: vec![table],
            select: vec![0; slices as usize],
        }
    }

    /// Lossless: every step [`STEP_ONE`].
    pub fn lossless(steps: usize, slices: u32) -> Self {
        Self::uniform(vec![STEP_ONE; steps], slices)
    }

    /// Several tables of equal length and a table index per slice; `None`
    /// when they do not fit together.
    pub fn mixed(tables: Vec<Vec<u32>>, select: Vec<u8>) -> Option<Self> {
        let fits = (1..=MAX_TABLES).contains(&tables.len())
            && tables.iter().all(|t| t.len() == tables[0].len())
            && tables[0].len() <= GPU_TABLE_STRIDE
            && select.iter().all(|&s| usize::from(s) < tables.len());
        fits.then_some(Steps { tables, select })
    }

    /// The tables.
    pub fn tables(&self) -> &[Vec<u32>] {
        &self.tables
    }

    /// Table index of each slice.
    pub fn select(&self) -> &[u8] {
        &self.select
    }

    /// The step of `band` in `slice`.
    #[inline]
    pub fn step(&self, slice: u32, band: u32) -> u32 {
        self.tables[usize::from(self.select[slice as usize])][band as usize]
    }

    /// True when nothing is quantised.
    pub fn is_lossless(&self) -> bool {
        self.tables.iter().flatten().all(|&s| s == STEP_ONE)
    }

    /// Slices `first..first + n` as a picture of their own (GPU stripes).
    pub fn stripe(&self, first: u32, n: u32) -> Steps {
        Steps {
            tables: self.tables.clone(),
            select: self.select[first as usize..(first + n) as usize].to_vec(),
        }
    }

    /// The GPU kernels' step buffer: [`MAX_TABLES`] tables of
    /// [`GPU_TABLE_STRIDE`] entries, then one table index per slice.
    pub fn gpu_words(&self) -> Vec<u32> {
        let mut out = Vec::new();
        self.gpu_words_into(0, self.select.len() as u32, &mut out);
        out
    }

    /// [`gpu_words`](Self::gpu_words) of slices `first..first + n` (a
    /// stripe), appended to `out`.
    pub fn gpu_words_into(&self, first: u32, n: u32, out: &mut Vec<u32>) {
        let at = out.len();
        out.resize(at + MAX_TABLES * GPU_TABLE_STRIDE, STEP_ONE);
        for (t, table) in self.tables.iter().enumerate() {
            let from = at + t * GPU_TABLE_STRIDE;
            out[from..from + table.len()].copy_from_slice(table);
        }
        let select = &self.select[first as usize..(first + n) as usize];
        out.extend(select.iter().map(|&s| u32::from(s)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_steps_are_checked_and_looked_up_per_slice() {
        let s = Steps::mixed(vec![vec![16, 20], vec![16, 40]], vec![0, 1, 1]).unwrap();
        assert_eq!(s.step(0, 1), 20);
        assert_eq!(s.step(2, 1), 40);
        assert_eq!(s.stripe(1, 2).select(), &[1, 1]);
        let words = s.gpu_words();
        assert_eq!(words.len(), 2 * GPU_TABLE_STRIDE + 3);
        assert_eq!(words[GPU_TABLE_STRIDE + 1], 40);
        assert_eq!(&words[2 * GPU_TABLE_STRIDE..], &[0, 1, 1]);
        assert!(Steps::mixed(vec![vec![16], vec![16, 40]], vec![0]).is_none());
        assert!(Steps::mixed(vec![vec![16]], vec![1]).is_none());
        assert!(Steps::lossless(4, 2).is_lossless());
        assert!(!s.is_lossless());
    }
}
