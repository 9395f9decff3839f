//! The 7-band vs RGB comparison on measured reflectances.
//!
//! For each illuminant L and each test set, every sample r(λ) is:
//! 1. rendered to its true XYZ under L (ASTM E308 weights) and to CIELAB with
//!    L's white as the reference;
//! 2. "photographed" by the 7-band camera (Gaussian bands behind a passband)
//!    and by an RGB camera with measured sensitivities, both flat-fielded on
//!    the perfect white under L, with the same sensor noise
//!    ([`SensorNoise`]) drawn from a seeded generator;
//! 3. reconstructed: the 7 bands by Wiener estimation (trained on a *different*
//!    set) and integration under L; the RGB by a 3×3 matrix fitted by least
//!    squares from noise-free camera RGB to XYZ on a ColorChecker under L;
//! 4. scored with CIEDE2000 against the truth.
//!
//! Each sample is photographed `realisations` times with fresh noise; the
//! statistics pool all of them. p95 is the 95th percentile with linear
//! interpolation between order statistics (numpy's default).

use std::fmt;

use crate::camera::{CameraError, CameraModel, MeasuredCamera};
use crate::colorimetry::{Colorimetry, Illuminant, Observer};
use crate::difference::{delta_e_2000, xyz_to_lab};
use crate::estimator::{Estimator, EstimatorError};
use crate::linalg::{Matrix, Singular};
use crate::noise::{BadSnr, Rng, SensorNoise};
pub use crate::reflectance::{LoadError, ReflectanceSet, Reflectances};
use crate::render::BandSpec;

/// Options for [`compare_cameras`]. Start from `EvalOptions::default()`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EvalOptions {
    /// Training set of the Wiener estimator (default: CIE 2017, 99 samples).
    pub train: Reflectances,
    /// Test sets (default: ColorChecker (Ohta) and RAW to ACES 190).
    pub tests: Vec<Reflectances>,
    /// Illuminants, each both capture and viewing (default D65, D50, A).
    pub illuminants: Vec<Illuminant>,
    /// Observer (default CIE 1931 2°).
    pub observer: Observer,
    /// SNR at white in dB, or `None` for noise-free cameras (default 40 dB).
    pub snr_db: Option<f64>,
    /// Noise draws per sample (default 10).
    pub realisations: usize,
    /// Seed of the noise generator (default 17).
    pub seed: u64,
    /// The multispectral camera's bands (default: med8k's 7).
    pub bands: Vec<BandSpec>,
    /// The multispectral camera's passband, nm (default 400–700).
    pub passband_nm: (f64, f64),
    /// The RGB camera (default Nikon D5100).
    pub rgb_camera: MeasuredCamera,
    /// The chart the RGB camera's 3×3 is fitted on (default ColorChecker, Ohta).
    pub chart: Reflectances,
    /// Also report the regularised pseudo-inverse for the multispectral camera,
    /// with this smoothness weight (default `Some(Estimator::DEFAULT_LAMBDA)`).
    pub pseudo_inverse: Option<f64>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            train: Reflectances::builtin(ReflectanceSet::Cie2017Tcs99),
            tests: vec![
                Reflectances::builtin(ReflectanceSet::ColorCheckerOhta),
                Reflectances::builtin(ReflectanceSet::RawToAces190),
            ],
            illuminants: Illuminant::EVAL_DEFAULT.to_vec(),
            observer: Observer::Cie1931TwoDegree,
            snr_db: Some(40.0),
            realisations: 10,
            seed: 17,
            bands: BandSpec::med8k_seven(),
            passband_nm: (400.0, 700.0),
            rgb_camera: MeasuredCamera::NikonD5100,
            chart: Reflectances::builtin(ReflectanceSet::ColorCheckerOhta),
            pseudo_inverse: Some(Estimator::DEFAULT_LAMBDA),
        }
    }
}

impl EvalOptions {
    /// Sets the Wiener training set.
    pub fn with_train(mut self, train: Reflectances) -> Self {
        self.train = train;
        self
    }
    /// Sets the test sets.
    pub fn with_tests(mut self, tests: Vec<Reflectances>) -> Self {
        self.tests = tests;
        self
    }
    /// Sets the illuminants.
    pub fn with_illuminants(mut self, illuminants: Vec<Illuminant>) -> Self {
        self.illuminants = illuminants;
        self
    }
    /// Sets the observer.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }
    /// Sets the SNR at white (dB), or `None` for no noise.
    pub fn with_snr_db(mut self, snr_db: Option<f64>) -> Self {
        self.snr_db = snr_db;
        self
    }
    /// Sets the noise draws per sample.
    pub fn with_realisations(mut self, n: usize) -> Self {
        self.realisations = n;
        self
    }
    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Sets the RGB camera.
    pub fn with_rgb_camera(mut self, camera: MeasuredCamera) -> Self {
        self.rgb_camera = camera;
        self
    }
    /// Sets the chart the RGB 3×3 is fitted on.
    pub fn with_chart(mut self, chart: Reflectances) -> Self {
        self.chart = chart;
        self
    }
    /// Sets the multispectral bands.
    pub fn with_bands(mut self, bands: Vec<BandSpec>) -> Self {
        self.bands = bands;
        self
    }
    /// Includes the pseudo-inverse rows with weight `lambda`, or leaves them out.
    pub fn with_pseudo_inverse(mut self, lambda: Option<f64>) -> Self {
        self.pseudo_inverse = lambda;
        self
    }
}

/// Why the evaluation could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The cameras could not be built.
    #[error("camera: {0}")]
    Camera(#[from] CameraError),
    /// The estimator could not be fitted.
    #[error("estimator: {0}")]
    Estimator(#[from] EstimatorError),
    /// The SNR is out of range.
    #[error("noise: {0}")]
    Snr(#[from] BadSnr),
    /// The RGB correction could not be fitted.
    #[error("RGB 3x3 fit on {chart:?}: {source}")]
    Fit {
        /// The chart.
        chart: String,
        /// The singular system.
        source: Singular,
    },
    /// A set with no samples, no test sets, no illuminants or zero realisations.
    #[error("nothing to evaluate: {0}")]
    Empty(&'static str),
    /// The test set is the training set: the result would not be an honest test.
    #[error("test set {0:?} is the Wiener training set; choose a different set")]
    TrainIsTest(String),
}

/// ΔE2000 statistics.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DeltaEStats {
    /// Number of differences.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Maximum.
    pub max: f64,
}

impl DeltaEStats {
    /// Statistics of a list of differences (`None` if it is empty).
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let pos = p * (v.len() - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            v[lo] + (pos - lo as f64) * (v[hi] - v[lo])
        };
        Some(DeltaEStats {
            n: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            median: q(0.5),
            p95: q(0.95),
            max: v[v.len() - 1],
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalRow {
    /// Capture and viewing illuminant.
    pub illuminant: String,
    /// Test set name.
    pub test_set: String,
    /// Samples in the test set.
    pub samples: usize,
    /// Which camera and reconstruction.
    pub camera: String,
    /// ΔE2000 against the truth.
    pub delta_e: DeltaEStats,
}

/// Labels of the reconstructions in [`EvalRow::camera`].
pub const SEVEN_BAND_WIENER: &str = "7-band Wiener";
/// Label of the pseudo-inverse rows.
pub const SEVEN_BAND_PINV: &str = "7-band pseudo-inverse";
/// Label of the RGB rows.
pub const RGB_3X3: &str = "RGB + 3x3";

/// The evaluation's result (serialises to JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalReport {
    /// The Wiener training set.
    pub train_set: String,
    /// The chart the RGB 3×3 was fitted on.
    pub rgb_fit_set: String,
    /// The RGB camera.
    pub rgb_camera: String,
    /// The multispectral bands.
    pub bands: Vec<BandSpec>,
    /// SNR at white, dB (`None`: noise-free).
    pub snr_db: Option<f64>,
    /// Noise draws per sample.
    pub realisations: usize,
    /// Seed.
    pub seed: u64,
    /// Observer.
    pub observer: String,
    /// The rows.
    pub rows: Vec<EvalRow>,
}

impl EvalReport {
    /// Mean ΔE2000 of `camera` for one illuminant and test set.
    pub fn mean(&self, illuminant: Illuminant, test_set: &str, camera: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| {
                r.illuminant == illuminant.name() && r.test_set == test_set && r.camera == camera
            })
            .map(|r| r.delta_e.mean)
    }
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snr = match self.snr_db {
            Some(db) => format!("{db} dB at white"),
            None => "none".to_string(),
        };
        writeln!(
            f,
            "Wiener trained on {}; RGB = {} with 3x3 fitted on {}; noise {}; {} draws/sample, seed {}; {}",
            self.train_set,
            self.rgb_camera,
            self.rgb_fit_set,
            snr,
            self.realisations,
            self.seed,
            self.observer
        )?;
        writeln!(
            f,
            "{:<5} {:<20} {:>4} {:<22} {:>7} {:>7} {:>7} {:>7}",
            "illum", "test set", "n", "camera", "mean", "median", "p95", "max"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<5} {:<20} {:>4} {:<22} {:>7.3} {:>7.3} {:>7.3} {:>7.3}",
                r.illuminant,
                r.test_set,
                r.samples,
                r.camera,
                r.delta_e.mean,
                r.delta_e.median,
                r.delta_e.p95,
                r.delta_e.max
            )?;
        }
        Ok(())
    }
}

/// Least-squares 3×3 `M` with `M · rgb ≈ xyz` over the pairs.
pub fn fit_3x3(rgb: &[Vec<f64>], xyz: &[[f64; 3]]) -> Result<[[f64; 3]; 3], Singular> {
    let mut ctc = Matrix::zeros(3, 3);
    let mut ctx = Matrix::zeros(3, 3);
    for (c, x) in rgb.iter().zip(xyz) {
        for i in 0..3 {
            for j in 0..3 {
                ctc[(i, j)] += c[i] * c[j];
                ctx[(i, j)] += c[i] * x[j];
            }
        }
    }
    // (CᵀC) Mᵀ = CᵀX.
    let mt = ctc.solve(&ctx)?;
    let m = mt.t();
    Ok(std::array::from_fn(|r| std::array::from_fn(|c| m[(r, c)])))
}

/// Runs the comparison (see the module docs).
pub fn compare_cameras(options: &EvalOptions) -> Result<EvalReport, EvalError> {
    if options.tests.is_empty() {
        return Err(EvalError::Empty("no test sets"));
    }
    if options.illuminants.is_empty() {
        return Err(EvalError::Empty("no illuminants"));
    }
    if options.realisations == 0 {
        return Err(EvalError::Empty("zero realisations"));
    }
    if options.chart.is_empty() || options.tests.iter().any(Reflectances::is_empty) {
        return Err(EvalError::Empty("a reflectance set has no samples"));
    }
    if let Some(t) = options
        .tests
        .iter()
        .find(|t| t.spectra() == options.train.spectra())
    {
        return Err(EvalError::TrainIsTest(t.name().to_string()));
    }
    let noise = match options.snr_db {
        Some(db) => SensorNoise::from_snr_db(db)?,
        None => SensorNoise::none(),
    };
    let centres: Vec<f64> = options.bands.iter().map(|b| b.centre_nm).collect();
    let widths: Vec<f64> = options.bands.iter().map(|b| b.fwhm_nm).collect();
    let (lo, hi) = options.passband_nm;
    let bands_base = CameraModel::gaussian_bands(&centres, &widths)?.with_passband(lo, hi)?;
    let rgb_base = CameraModel::measured(options.rgb_camera);

    let mut rows = Vec::new();
    let mut rng = Rng::new(options.seed);
    for &ill in &options.illuminants {
        let col = Colorimetry::new(ill, options.observer);
        let white = col.white();
        let ms = bands_base.clone().with_capture_illuminant(ill);
        let rgb = rgb_base.clone().with_capture_illuminant(ill);
        let wiener = Estimator::wiener(&ms, &options.train, noise)?.band_to_xyz(&col);
        let pinv = match options.pseudo_inverse {
            Some(lambda) => Some(Estimator::pseudo_inverse(&ms, lambda)?.band_to_xyz(&col)),
            None => None,
        };
        let chart_rgb: Vec<Vec<f64>> = options
            .chart
            .spectra()
            .iter()
            .map(|s| rgb.respond(s))
            .collect();
        let chart_xyz: Vec<[f64; 3]> = options.chart.spectra().iter().map(|s| col.xyz(s)).collect();
        let m = fit_3x3(&chart_rgb, &chart_xyz).map_err(|source| EvalError::Fit {
            chart: options.chart.name().to_string(),
            source,
        })?;

        for test in &options.tests {
            let mut de_w = Vec::new();
            let mut de_p = Vec::new();
            let mut de_rgb = Vec::new();
            for s in test.spectra() {
                let truth = xyz_to_lab(col.xyz(s), white);
                let clean_ms = ms.respond(s);
                let clean_rgb = rgb.respond(s);
                for _ in 0..options.realisations {
                    let mut v = clean_ms.clone();
                    noise.apply(&mut v, &mut rng);
                    de_w.push(delta_e_2000(truth, xyz_to_lab(wiener.apply(&v), white)));
                    if let Some(p) = &pinv {
                        de_p.push(delta_e_2000(truth, xyz_to_lab(p.apply(&v), white)));
                    }
                    let mut c = clean_rgb.clone();
                    noise.apply(&mut c, &mut rng);
                    let xyz = crate::linalg::mul3(&m, [c[0], c[1], c[2]]);
                    de_rgb.push(delta_e_2000(truth, xyz_to_lab(xyz, white)));
                }
            }
            for (camera, de) in [
                (SEVEN_BAND_WIENER, de_w),
                (SEVEN_BAND_PINV, de_p),
                (RGB_3X3, de_rgb),
            ] {
                if let Some(stats) = DeltaEStats::of(&de) {
                    rows.push(EvalRow {
                        illuminant: ill.name().to_string(),
                        test_set: test.name().to_string(),
                        samples: test.len(),
                        camera: camera.to_string(),
                        delta_e: stats,
                    });
                }
            }
        }
    }
    Ok(EvalReport {
        train_set: format!("{} ({} spectra)", options.train.name(), options.train.len()),
        rgb_fit_set: format!("{} ({} patches)", options.chart.name(), options.chart.len()),
        rgb_camera: rgb_base.name().to_string(),
        bands: options.bands.clone(),
        snr_db: options.snr_db,
        realisations: options.realisations,
        seed: options.seed,
        observer: options.observer.to_string(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_numpy_conventions() {
        let s = DeltaEStats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.n, s.mean, s.median, s.max), (4, 2.5, 2.5, 4.0));
        assert!((s.p95 - 3.85).abs() < 1e-12);
        assert!(DeltaEStats::of(&[]).is_none());
    }

    #[test]
    fn fit_recovers_an_exact_matrix() {
        let m = [[0.5, 0.3, 0.1], [0.2, 0.7, 0.1], [0.0, 0.1, 0.9]];
        let rgb: Vec<Vec<f64>> = (0..10)
            .map(|i| {
                vec![
                    i as f64 * 0.1,
                    (i * i % 7) as f64 * 0.1,
                    ((i * 3) % 5) as f64 * 0.2,
                ]
            })
            .collect();
        let xyz: Vec<[f64; 3]> = rgb
            .iter()
            .map(|c| crate::linalg::mul3(&m, [c[0], c[1], c[2]]))
            .collect();
        let got = fit_3x3(&rgb, &xyz).unwrap();
        for r in 0..3 {
            for c in 0..3 {
                assert!((got[r][c] - m[r][c]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn training_on_the_test_set_is_refused() {
        let cc = Reflectances::builtin(ReflectanceSet::ColorCheckerOhta);
        let o = EvalOptions::default()
            .with_train(cc.clone())
            .with_tests(vec![cc]);
        assert!(matches!(
            compare_cameras(&o),
            Err(EvalError::TrainIsTest(_))
        ));
        let o = EvalOptions::default().with_illuminants(vec![]);
        assert!(matches!(compare_cameras(&o), Err(EvalError::Empty(_))));
    }
}
