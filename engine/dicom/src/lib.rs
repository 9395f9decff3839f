//! DICOM for med8k: the 7-band specimen image, its true-colour rendering and
//! flagged endoscope frames as objects a real PACS keeps, and the PACS
//! itself reached over DICOMweb (STOW-RS, WADO-RS) or DIMSE (C-STORE).
//!
//! # A guided tour
//! - [`wsi`]: [`SpecimenSeries`] holds one specimen's study, series, frame
//!   of reference and specimen UIDs; [`SpecimenSeries::spectral_image`] makes
//!   the N-band cube a VL Whole Slide Microscopy Image (one optical path per
//!   band, TILED_FULL, MONOCHROME2, 16 bits) and
//!   [`SpecimenSeries::colour_image`] its sRGB rendering (with the ICC
//!   profile) in the same series. The module docs say why WSI and not VL
//!   Photographic.
//! - [`endoscopy`]: an 8K endoscope frame as a VL Endoscopic Image, and
//!   [`report`]: the detector's result on it as a Comprehensive SR that
//!   references it (model, version, score, boxes as image coordinates);
//!   [`instructions`]: a pathologist's signed cut-out instructions on a
//!   specimen as a Comprehensive SR in the specimen's study.
//! - [`Instance`]: what every IOD function returns; [`Instance::write`] in a
//!   [`Syntax`] (Explicit VR Little Endian, JPEG-LS lossless, deflate);
//!   [`Instance::disclose`] applies the consent's [`identity::Disclosure`].
//! - [`import`]: reads a file back, refusing other IODs and naming the tag
//!   that is wrong; [`import::read_cube`] gives back the cube bit-exact.
//! - [`identity`]: the site's patient and study identifiers, and PS3.15's
//!   basic de-identification profile; [`uid`]: stable UIDs under a site root
//!   or `2.25.`.
//! - [`web`] (STOW-RS, WADO-RS, QIDO-RS over a small blocking HTTP client)
//!   and [`dimse`] (C-STORE with dicom-ul); [`pacs::Pacs`] is either.
//! - [`study`]: a specimen's spectral image chosen from a PACS study by what
//!   QIDO-RS lists, retrieved by WADO-RS and read in memory (the viewer's
//!   `--pacs`), with its pixel spacing ([`import::pixel_spacing_mm`]).
//! - [`orthanc`]: a real PACS on this machine (Debian's Orthanc on loopback)
//!   for `med8k bench` and the tests.
//!
//! Each IOD function fills the modules PS3.3 lists for it, in that order,
//! through the shared module functions (as highdicom's classes read).
//! Nothing here logs a patient attribute: logs name objects by a hash of
//! their UID ([`uid::log_id`]).
//!
//! # Example
//! ```no_run
//! use med8k_dicom::identity::{Patient, StudyInfo, Disclosure};
//! use med8k_dicom::{Site, SpecimenSeries, Syntax, WsiOptions, uid::UidRoot};
//! use med8k_media::spectral::envi;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cube = envi::read("samples/fixtures/he_region.hdr".as_ref())?;
//! let site = Site::new(UidRoot::org("1.2.392.200036.9999")?);
//! let study = StudyInfo {
//!     patient: Patient { id: "P0001".into(), name: "YAMADA^TARO".into(), ..Default::default() },
//!     study_id: "S1".into(),
//!     date: "20260115".into(),
//!     time: "093000".into(),
//!     ..Default::default()
//! };
//! let series = SpecimenSeries::new(&site, &study, &cube, WsiOptions::default())?;
//! let mut image = series.spectral_image(&cube)?;
//! image.write("he_region.dcm".as_ref(), Syntax::JpegLsLossless)?;
//! // What crosses a link: the pseudonym only.
//! image.disclose(&Disclosure::Pseudonym("3f2a…".into()));
//! image.write("he_region.disclosed.dcm".as_ref(), Syntax::JpegLsLossless)?;
//! let back = med8k_dicom::import::read_cube("he_region.dcm".as_ref())?;
//! assert_eq!(back.data(), cube.data());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod dimse;
pub mod endoscopy;
mod error;
pub mod identity;
pub mod import;
mod instance;
pub mod instructions;
mod modules;
pub mod orthanc;
pub mod pacs;
pub mod report;
pub mod study;
pub mod uid;
pub mod web;
pub mod wsi;

pub use error::{ExportError, ImportError, PacsError, StudyError};
pub use instance::{Instance, ObjectKind, Photometric, Pixels, Syntax};
pub use wsi::{SpecimenSeries, WsiOptions};

use uid::UidRoot;

/// Software Versions written into every object.
pub const SOFTWARE_VERSION: &str = concat!("med8k ", env!("CARGO_PKG_VERSION"));
/// med8k's Implementation Class UID (a fixed `2.25.` UID).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.225374918941032630500786186162268399510";
/// med8k's Implementation Version Name.
pub const IMPLEMENTATION_VERSION_NAME: &str = "MED8K_0_1";

/// The site that writes objects: where its UIDs come from, and the
/// equipment attributes it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Site {
    /// The site's UID root.
    pub uid_root: UidRoot,
    /// Institution Name.
    pub institution: String,
    /// Manufacturer (of the equipment: med8k for what it renders).
    pub manufacturer: String,
    /// Manufacturer's Model Name.
    pub model: String,
    /// Device Serial Number.
    pub device_serial: String,
}

impl Site {
    /// A site with `uid_root` and med8k's equipment defaults.
    pub fn new(uid_root: UidRoot) -> Self {
        Site {
            uid_root,
            institution: String::new(),
            manufacturer: "med8k".into(),
            model: "med8k multispectral".into(),
            device_serial: "0".into(),
        }
    }

    /// Sets the institution name.
    pub fn with_institution(mut self, name: &str) -> Self {
        self.institution = name.to_string();
        self
    }
}
