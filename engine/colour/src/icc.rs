//! ICC v4 matrix/TRC display profiles for the output spaces.
//!
//! The profile is the smallest one ICC.1:2022 (v4.4) allows for an RGB
//! display: `desc`, `cprt`, `wtpt` (D50, as v4 requires of display profiles),
//! `rXYZ`/`gXYZ`/`bXYZ` (the primaries adapted to the D50 PCS with Bradford),
//! `rTRC`/`gTRC`/`bTRC` (one shared `para` curve of function type 3, which is
//! the sRGB curve exactly), and `chad` (the D65→D50 Bradford matrix). It is
//! what the PNG writer embeds and what a DICOM true-colour instance carries in
//! its ICC Profile attribute. The profile ID is left zero ("not computed"),
//! which v4 permits.

use crate::linalg::mul33;
use crate::rgb::{OutputSpace, PCS_D50_XYZ, bradford};

/// The ICC profile of the sRGB output space.
pub fn srgb_profile() -> Vec<u8> {
    profile(OutputSpace::Srgb)
}

/// The ICC profile of an output space.
pub fn profile(space: OutputSpace) -> Vec<u8> {
    let chad = bradford(space.white_xyz(), PCS_D50_XYZ);
    let colorants = mul33(&chad, &space.rgb_to_xyz());
    let description = match space {
        OutputSpace::Srgb => "sRGB IEC61966-2.1 (med8k)",
        OutputSpace::DisplayP3 => "Display P3 (med8k)",
    };
    let column = |c: usize| [colorants[0][c], colorants[1][c], colorants[2][c]];
    let trc = para_type3(2.4, 1.0 / 1.055, 0.055 / 1.055, 1.0 / 12.92, 0.04045);
    let tags: Vec<([u8; 4], Vec<u8>)> = vec![
        (*b"desc", mluc(description)),
        (*b"cprt", mluc("No copyright, use freely")),
        (*b"wtpt", xyz_type(PCS_D50_XYZ)),
        (*b"rXYZ", xyz_type(column(0))),
        (*b"gXYZ", xyz_type(column(1))),
        (*b"bXYZ", xyz_type(column(2))),
        (*b"rTRC", trc.clone()),
        (*b"gTRC", trc.clone()),
        (*b"bTRC", trc),
        (*b"chad", sf32_type(&chad)),
    ];
    assemble(&tags)
}

/// An s15Fixed16Number.
fn s15f16(v: f64) -> [u8; 4] {
    ((v * 65536.0).round() as i32).to_be_bytes()
}

fn xyz_type(xyz: [f64; 3]) -> Vec<u8> {
    let mut out = b"XYZ \0\0\0\0".to_vec();
    for v in xyz {
        out.extend_from_slice(&s15f16(v));
    }
    out
}

fn sf32_type(m: &[[f64; 3]; 3]) -> Vec<u8> {
    let mut out = b"sf32\0\0\0\0".to_vec();
    for v in m.iter().flatten() {
        out.extend_from_slice(&s15f16(*v));
    }
    out
}

/// parametricCurveType, function type 3: Y = (aX + b)^g for X ≥ d, else cX.
fn para_type3(g: f64, a: f64, b: f64, c: f64, d: f64) -> Vec<u8> {
    let mut out = b"para\0\0\0\0".to_vec();
    out.extend_from_slice(&3u16.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    for v in [g, a, b, c, d] {
        out.extend_from_slice(&s15f16(v));
    }
    out
}

/// multiLocalizedUnicodeType with one en-US record.
fn mluc(text: &str) -> Vec<u8> {
    let utf16: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let mut out = b"mluc\0\0\0\0".to_vec();
    out.extend_from_slice(&1u32.to_be_bytes()); // records
    out.extend_from_slice(&12u32.to_be_bytes()); // record size
    out.extend_from_slice(b"enUS");
    out.extend_from_slice(&(utf16.len() as u32).to_be_bytes());
    out.extend_from_slice(&28u32.to_be_bytes()); // offset from the tag's start
    out.extend_from_slice(&utf16);
    out
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// Header + tag table + tag data; identical tag data is stored once.
fn assemble(tags: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
    let table_len = 4 + 12 * tags.len();
    let mut data: Vec<u8> = Vec::new();
    let mut entries: Vec<([u8; 4], u32, u32)> = Vec::new();
    let mut stored: Vec<(&[u8], u32)> = Vec::new();
    for (sig, body) in tags {
        let offset = match stored.iter().find(|(b, _)| *b == body.as_slice()) {
            Some(&(_, off)) => off,
            None => {
                let off = (128 + table_len + data.len()) as u32;
                data.extend_from_slice(body);
                pad4(&mut data);
                stored.push((body, off));
                off
            }
        };
        entries.push((*sig, offset, body.len() as u32));
    }
    let size = (128 + table_len + data.len()) as u32;
    let mut out = Vec::with_capacity(size as usize);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&[0; 4]); // preferred CMM: none
    out.extend_from_slice(&[0x04, 0x40, 0, 0]); // version 4.4
    out.extend_from_slice(b"mntr");
    out.extend_from_slice(b"RGB ");
    out.extend_from_slice(b"XYZ ");
    for v in [2026u16, 1, 1, 0, 0, 0] {
        out.extend_from_slice(&v.to_be_bytes()); // fixed date: reproducible bytes
    }
    out.extend_from_slice(b"acsp");
    out.extend_from_slice(&[0; 4]); // platform
    out.extend_from_slice(&[0; 4]); // flags
    out.extend_from_slice(&[0; 4]); // manufacturer
    out.extend_from_slice(&[0; 4]); // model
    out.extend_from_slice(&[0; 8]); // attributes
    out.extend_from_slice(&0u32.to_be_bytes()); // perceptual intent
    for v in PCS_D50_XYZ {
        out.extend_from_slice(&s15f16(v));
    }
    out.extend_from_slice(&[0; 4]); // creator
    out.extend_from_slice(&[0; 16]); // profile ID: not computed
    out.extend_from_slice(&[0; 28]); // reserved
    debug_assert_eq!(out.len(), 128);
    out.extend_from_slice(&(tags.len() as u32).to_be_bytes());
    for (sig, off, len) in entries {
        out.extend_from_slice(&sig);
        out.extend_from_slice(&off.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    #[test]
    fn header_and_tag_table_are_consistent() {
        for space in [OutputSpace::Srgb, OutputSpace::DisplayP3] {
            let p = profile(space);
            assert_eq!(be32(&p, 0) as usize, p.len());
            assert_eq!(p.len() % 4, 0);
            assert_eq!(&p[36..40], b"acsp");
            assert_eq!(&p[12..20], b"mntrRGB ");
            let n = be32(&p, 128) as usize;
            assert_eq!(n, 10);
            for t in 0..n {
                let e = 132 + 12 * t;
                let (off, len) = (be32(&p, e + 4) as usize, be32(&p, e + 8) as usize);
                assert_eq!(off % 4, 0);
                assert!(off + len <= p.len());
            }
        }
    }

    #[test]
    fn colorants_add_up_to_the_pcs_white() {
        let chad = bradford(OutputSpace::Srgb.white_xyz(), PCS_D50_XYZ);
        let m = mul33(&chad, &OutputSpace::Srgb.rgb_to_xyz());
        for (r, want) in PCS_D50_XYZ.iter().enumerate() {
            assert!((m[r].iter().sum::<f64>() - want).abs() < 1e-12);
        }
        // sRGB red in the D50 PCS is (0.4361, 0.2225, 0.0139) (ICC sRGB profiles).
        assert!((m[0][0] - 0.4361).abs() < 2e-4 && (m[1][0] - 0.2225).abs() < 2e-4);
    }
}
