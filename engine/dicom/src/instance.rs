//! [`Instance`]: a built object (data set and frames) and how it is written
//! in a transfer syntax ([`Syntax`]).

use std::borrow::Cow;
use std::path::Path;

use dicom_core::value::{PixelFragmentSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::Codec;
use dicom_encoding::adapters::{EncodeOptions, PixelDataObject, PixelDataWriter, RawPixelData};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use dicom_transfer_syntax_registry::entries::JPEG_LS_LOSSLESS_IMAGE_COMPRESSION;
use rayon::prelude::*;

use crate::error::{ExportError, one_line};
use crate::identity::{Disclosure, ProfileOptions, deidentify};

/// The transfer syntaxes med8k writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Syntax {
    /// Explicit VR Little Endian (`1.2.840.10008.1.2.1`): every PACS takes it.
    #[default]
    ExplicitLittle,
    /// JPEG-LS Lossless (`1.2.840.10008.1.2.4.80`), each frame through
    /// CharLS (dicom-rs's `charls` feature). Used for monochrome pixel data;
    /// colour instances are written in Explicit VR Little Endian (see
    /// [`Instance::write`]).
    JpegLsLossless,
    /// Deflated Explicit VR Little Endian (`1.2.840.10008.1.2.1.99`): the
    /// whole data set through zlib.
    Deflated,
}

impl Syntax {
    /// The transfer syntax UID.
    pub fn uid(self) -> &'static str {
        match self {
            Syntax::ExplicitLittle => uids::EXPLICIT_VR_LITTLE_ENDIAN,
            Syntax::JpegLsLossless => uids::JPEGLS_LOSSLESS,
            Syntax::Deflated => uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
        }
    }

    /// A short name (`explicit`, `jpeg-ls`, `deflate`), as the CLI takes it.
    pub fn name(self) -> &'static str {
        match self {
            Syntax::ExplicitLittle => "explicit",
            Syntax::JpegLsLossless => "jpeg-ls",
            Syntax::Deflated => "deflate",
        }
    }
}

impl std::str::FromStr for Syntax {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "explicit" => Ok(Syntax::ExplicitLittle),
            "jpeg-ls" | "jpegls" => Ok(Syntax::JpegLsLossless),
            "deflate" => Ok(Syntax::Deflated),
            _ => Err(format!("{s:?}: explicit, jpeg-ls or deflate")),
        }
    }
}

/// Photometric interpretations med8k writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Photometric {
    /// One sample, 0 = black.
    Monochrome2,
    /// Three samples, interleaved (Planar Configuration 0).
    Rgb,
}

impl Photometric {
    /// The DICOM defined term.
    pub fn name(self) -> &'static str {
        match self {
            Photometric::Monochrome2 => "MONOCHROME2",
            Photometric::Rgb => "RGB",
        }
    }
}

/// Native pixel data, frame by frame (little-endian samples).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixels {
    /// Rows per frame.
    pub rows: u16,
    /// Columns per frame.
    pub columns: u16,
    /// 1 or 3.
    pub samples_per_pixel: u16,
    /// 8 or 16 (allocated = stored).
    pub bits: u16,
    /// How samples are read.
    pub photometric: Photometric,
    /// The frames, each `rows × columns × samples × bits/8` bytes.
    pub frames: Vec<Vec<u8>>,
}

/// What an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// The N-band cube as VL Whole Slide Microscopy Image, one optical path
    /// per band.
    SpectralImage,
    /// The true-colour rendering, VL Whole Slide Microscopy Image (RGB).
    ColourImage,
    /// An endoscope frame, VL Endoscopic Image.
    EndoscopicImage,
    /// A detector's result, Comprehensive SR.
    DetectionReport,
    /// A pathologist's cut-out instructions, Comprehensive SR.
    CutOutInstructions,
}

impl ObjectKind {
    /// A short name for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::SpectralImage => "spectral",
            ObjectKind::ColourImage => "colour",
            ObjectKind::EndoscopicImage => "endoscopic",
            ObjectKind::DetectionReport => "detection-sr",
            ObjectKind::CutOutInstructions => "cut-out-sr",
        }
    }
}

/// A DICOM object built by one of the IOD functions: its data set (without
/// Pixel Data) and its frames.
#[derive(Debug, Clone)]
pub struct Instance {
    pub(crate) kind: ObjectKind,
    pub(crate) dataset: InMemDicomObject,
    pub(crate) pixels: Option<Pixels>,
}

impl Instance {
    /// What the instance is.
    pub fn kind(&self) -> ObjectKind {
        self.kind
    }

    /// The data set, without Pixel Data.
    pub fn dataset(&self) -> &InMemDicomObject {
        &self.dataset
    }

    /// The frames, for image instances.
    pub fn pixels(&self) -> Option<&Pixels> {
        self.pixels.as_ref()
    }

    fn uid(&self, tag: dicom_core::Tag) -> String {
        self.dataset
            .get(tag)
            .and_then(|e| e.to_str().ok())
            .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
            .unwrap_or_default()
    }

    /// SOP Class UID.
    pub fn sop_class_uid(&self) -> String {
        self.uid(tags::SOP_CLASS_UID)
    }

    /// SOP Instance UID.
    pub fn sop_instance_uid(&self) -> String {
        self.uid(tags::SOP_INSTANCE_UID)
    }

    /// Study Instance UID.
    pub fn study_uid(&self) -> String {
        self.uid(tags::STUDY_INSTANCE_UID)
    }

    /// Series Instance UID.
    pub fn series_uid(&self) -> String {
        self.uid(tags::SERIES_INSTANCE_UID)
    }

    /// Applies what the consent discloses (see [`crate::identity`]).
    pub fn disclose(&mut self, disclosure: &Disclosure) {
        if let Disclosure::Pseudonym(p) = disclosure {
            deidentify(&mut self.dataset, p, ProfileOptions::med8k_object());
        }
    }

    /// The syntax the object is written in when `syntax` is asked for:
    /// `syntax` itself, except colour pixel data asked for in JPEG-LS (see
    /// [`Instance::to_object`]).
    pub fn syntax_for(&self, syntax: Syntax) -> Syntax {
        match &self.pixels {
            Some(px) if syntax == Syntax::JpegLsLossless && px.samples_per_pixel != 1 => {
                Syntax::ExplicitLittle
            }
            _ => syntax,
        }
    }

    /// The object as a dicom-rs file object in `syntax`. Colour pixel data
    /// asked for in JPEG-LS is written in Explicit VR Little Endian instead:
    /// dicom-rs 0.10's JPEG-LS writer hands interleaved RGB to CharLS as if it
    /// were planar, which decodes back bit-exact through dicom-rs but as the
    /// wrong picture in every other decoder.
    pub fn to_object(&self, syntax: Syntax) -> Result<DefaultDicomObject, ExportError> {
        let syntax = self.syntax_for(syntax);
        let mut ds = self.dataset.clone();
        if let Some(px) = &self.pixels {
            match syntax {
                Syntax::JpegLsLossless => {
                    let fragments = encode_jpeg_ls(px)?;
                    let mut offsets = Vec::with_capacity(fragments.len());
                    let mut at = 0u64;
                    for f in &fragments {
                        offsets.push(u32::try_from(at).map_err(|_| ExportError::Invalid {
                            what: "pixel data",
                            reason: "compressed frames exceed the 4 GiB basic offset table".into(),
                        })?);
                        at += f.len() as u64 + 8;
                    }
                    ds.put(DataElement::new_with_len(
                        tags::PIXEL_DATA,
                        VR::OB,
                        Length::UNDEFINED,
                        PixelFragmentSequence::new(offsets, fragments),
                    ));
                }
                Syntax::ExplicitLittle | Syntax::Deflated => {
                    let total: usize = px.frames.iter().map(Vec::len).sum();
                    let mut all = Vec::with_capacity(total + 1);
                    for f in &px.frames {
                        all.extend_from_slice(f);
                    }
                    if all.len() % 2 == 1 {
                        all.push(0);
                    }
                    let vr = if px.bits > 8 { VR::OW } else { VR::OB };
                    ds.put(DataElement::new(
                        tags::PIXEL_DATA,
                        vr,
                        PrimitiveValue::from(all),
                    ));
                }
            }
        }
        let class = self.sop_class_uid();
        let instance = self.sop_instance_uid();
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(class)
            .media_storage_sop_instance_uid(instance)
            .transfer_syntax(syntax.uid())
            .implementation_class_uid(crate::IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(crate::IMPLEMENTATION_VERSION_NAME);
        ds.with_meta(meta).map_err(|e| ExportError::Build {
            reason: one_line(&e),
        })
    }

    /// Writes the instance as a DICOM Part 10 file; returns its size in bytes.
    pub fn write(&self, path: &Path, syntax: Syntax) -> Result<u64, ExportError> {
        let bytes = self.to_bytes(syntax)?;
        std::fs::write(path, &bytes).map_err(|source| ExportError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(bytes.len() as u64)
    }

    /// The instance as a DICOM Part 10 file in memory (preamble, meta, data set).
    pub fn to_bytes(&self, syntax: Syntax) -> Result<Vec<u8>, ExportError> {
        let obj = self.to_object(syntax)?;
        let mut out = Vec::with_capacity(
            self.pixels
                .as_ref()
                .map_or(0, |p| p.frames.iter().map(Vec::len).sum())
                + 64 * 1024,
        );
        obj.write_all(&mut out).map_err(|e| ExportError::Build {
            reason: one_line(&e),
        })?;
        Ok(out)
    }
}

/// One native frame seen through dicom-rs's pixel-data interface, so that
/// its codec adapters can encode frames independently (in parallel).
pub(crate) struct OneFrame<'a> {
    pub(crate) ts: &'a str,
    pub(crate) rows: u16,
    pub(crate) columns: u16,
    pub(crate) samples: u16,
    pub(crate) bits: u16,
    pub(crate) photometric: &'a str,
    pub(crate) data: &'a [u8],
    /// Encapsulated: the data is one fragment.
    pub(crate) encapsulated: bool,
}

impl PixelDataObject for OneFrame<'_> {
    fn transfer_syntax_uid(&self) -> &str {
        self.ts
    }
    fn rows(&self) -> Option<u16> {
        Some(self.rows)
    }
    fn cols(&self) -> Option<u16> {
        Some(self.columns)
    }
    fn samples_per_pixel(&self) -> Option<u16> {
        Some(self.samples)
    }
    fn bits_allocated(&self) -> Option<u16> {
        Some(self.bits)
    }
    fn bits_stored(&self) -> Option<u16> {
        Some(self.bits)
    }
    fn photometric_interpretation(&self) -> Option<&str> {
        Some(self.photometric)
    }
    fn number_of_frames(&self) -> Option<u32> {
        Some(1)
    }
    fn number_of_fragments(&self) -> Option<u32> {
        self.encapsulated.then_some(1)
    }
    fn fragment(&self, fragment: usize) -> Option<Cow<'_, [u8]>> {
        (fragment == 0).then_some(Cow::Borrowed(self.data))
    }
    fn offset_table(&self) -> Option<Cow<'_, [u32]>> {
        self.encapsulated.then_some(Cow::Borrowed(&[][..]))
    }
    fn raw_pixel_data(&self) -> Option<RawPixelData> {
        let mut fragments = smallvec_one(self.data.to_vec());
        fragments.shrink_to_fit();
        Some(RawPixelData {
            fragments,
            offset_table: Default::default(),
        })
    }
}

fn smallvec_one<T>(v: T) -> dicom_core::value::C<T> {
    let mut s = dicom_core::value::C::new();
    s.push(v);
    s
}

/// Each frame through dicom-rs's JPEG-LS lossless writer (CharLS), in
/// parallel; fragments padded to even length.
fn encode_jpeg_ls(px: &Pixels) -> Result<Vec<Vec<u8>>, ExportError> {
    let Codec::EncapsulatedPixelData(_, Some(writer)) = JPEG_LS_LOSSLESS_IMAGE_COMPRESSION.codec()
    else {
        return Err(ExportError::Build {
            reason: "this build has no JPEG-LS encoder (dicom-rs feature charls)".into(),
        });
    };
    px.frames
        .par_iter()
        .enumerate()
        .map(|(i, frame)| {
            let src = OneFrame {
                ts: uids::EXPLICIT_VR_LITTLE_ENDIAN,
                rows: px.rows,
                columns: px.columns,
                samples: px.samples_per_pixel,
                bits: px.bits,
                photometric: px.photometric.name(),
                data: frame,
                encapsulated: false,
            };
            let mut out = Vec::with_capacity(frame.len() / 2);
            writer
                .encode_frame(&src, 0, EncodeOptions::default(), &mut out)
                .map_err(|e| ExportError::Encode {
                    frame: i,
                    syntax: "JPEG-LS Lossless",
                    reason: one_line(&e),
                })?;
            if out.len() % 2 == 1 {
                out.push(0);
            }
            Ok(out)
        })
        .collect()
}
