//! The DER this crate reads and writes itself, in one place: a writer for
//! the few types CMS SignedData uses, a strict bounds-checked reader (CMS,
//! and the certificate extensions x509-parser leaves opaque: hcRole in
//! subjectDirectoryAttributes), and the civil-time conversion for
//! UTCTime/GeneralizedTime.
//!
//! The reader accepts DER only: single-octet tags, definite minimal lengths
//! of at most four octets. Every read is bounds-checked; hostile input gives
//! an error, never a panic.

use crate::civil::{civil_from_unix, days_from_civil, days_in_month};

// ---- tags ----

pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
pub(crate) const UTC_TIME: u8 = 0x17;
pub(crate) const GENERALIZED_TIME: u8 = 0x18;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
/// `[0]` constructed, context-specific.
pub(crate) const CONTEXT_0: u8 = 0xa0;

// ---- writer ----

/// One TLV with `tag` around `content`, the length in its shortest form.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut out = Vec::with_capacity(n + 10);
    out.push(tag);
    match u8::try_from(n) {
        Ok(short) if short < 0x80 => out.push(short),
        _ => {
            let be = n.to_be_bytes();
            let significant = &be[be.iter().take_while(|&&b| b == 0).count()..];
            // At most `size_of::<usize>()` octets, so the count fits in 7 bits.
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
    }
    out.extend_from_slice(content);
    out
}

/// SEQUENCE of already-encoded parts, in order.
pub(crate) fn sequence(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// SET OF already-encoded elements, sorted by their encodings (X.690 §11.6).
pub(crate) fn set_of(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    tlv(tag, &sorted.concat())
}

/// SET of already-encoded parts, in the order given (a SET whose members
/// are of different types, or a SET OF with one member).
#[cfg(feature = "demo-pki")]
pub(crate) fn set(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(SET, &parts.concat())
}

/// UTF8String.
#[cfg(feature = "demo-pki")]
pub(crate) fn utf8(s: &str) -> Vec<u8> {
    tlv(0x0c, s.as_bytes())
}

/// A non-negative INTEGER from big-endian magnitude bytes.
pub(crate) fn uint(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let m = &magnitude[skip..];
    let mut body = Vec::with_capacity(m.len() + 1);
    if m.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(m);
    tlv(INTEGER, &body)
}

/// The arcs of a dotted OID, when it is one (two arcs at least, the first
/// 0, 1 or 2, the second below 40 unless the first is 2).
pub(crate) fn arcs(dotted: &str) -> Option<Vec<u64>> {
    let arcs: Vec<u64> = dotted
        .split('.')
        .map(|a| a.parse().ok())
        .collect::<Option<_>>()?;
    match arcs.as_slice() {
        [a, b, ..] if *a <= 2 && (*a == 2 || *b < 40) => Some(arcs),
        _ => None,
    }
}

/// OBJECT IDENTIFIER from dotted text known at compile time (our constants).
/// An arc list that is not a valid OID encodes as an empty OID, which every
/// reader refuses; the constants below are checked by a unit test.
pub(crate) fn oid(dotted: &str) -> Vec<u8> {
    let mut body = Vec::new();
    if let Some(arcs) = arcs(dotted) {
        for arc in std::iter::once(arcs[0] * 40 + arcs[1]).chain(arcs[2..].iter().copied()) {
            push_base128(&mut body, arc);
        }
    }
    tlv(OID, &body)
}

fn push_base128(out: &mut Vec<u8>, v: u64) {
    // Seven bits per octet, most significant first, bit 8 set on all but the last.
    let groups = (1..10).take_while(|i| v >> (7 * i) != 0).count() + 1;
    for i in (0..groups).rev() {
        let seven = ((v >> (7 * i)) & 0x7f) as u8;
        out.push(if i == 0 { seven } else { seven | 0x80 });
    }
}

/// INTEGER from a small non-negative value.
pub(crate) fn small_integer(v: u8) -> Vec<u8> {
    if v < 0x80 {
        tlv(INTEGER, &[v])
    } else {
        tlv(INTEGER, &[0, v])
    }
}

/// AlgorithmIdentifier with absent parameters (RFC 5754 for SHA-2 digests).
pub(crate) fn algorithm(oid_dotted: &str) -> Vec<u8> {
    sequence(&[&oid(oid_dotted)])
}

/// AlgorithmIdentifier with NULL parameters (RFC 4055 for RSA).
pub(crate) fn algorithm_null(oid_dotted: &str) -> Vec<u8> {
    sequence(&[&oid(oid_dotted), &tlv(NULL, &[])])
}

/// Time as RFC 5280 wants it: UTCTime for 1950–2049, GeneralizedTime
/// otherwise. `None` for years outside 0000–9999.
pub(crate) fn time(unix: i64) -> Option<Vec<u8>> {
    let (y, mo, d, h, mi, s) = civil_from_unix(unix);
    if (1950..2050).contains(&y) {
        let text = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
        Some(tlv(UTC_TIME, text.as_bytes()))
    } else if (0..=9999).contains(&y) {
        let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z");
        Some(tlv(GENERALIZED_TIME, text.as_bytes()))
    } else {
        None
    }
}

// ---- reader ----

/// One TLV read from the input: its tag, contents and whole encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
    /// Tag, length and contents, as they appeared.
    pub raw: &'a [u8],
}

/// Reads one TLV from the front of `input`; returns it and the rest.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), &'static str> {
    let (&tag, after_tag) = input.split_first().ok_or("truncated: no tag")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tags are not supported");
    }
    let (&first, mut rest) = after_tag.split_first().ok_or("truncated: no length")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 {
            return Err("indefinite length is not DER");
        }
        if n > 4 {
            return Err("length too long");
        }
        let (octets, r) = rest.split_at_checked(n).ok_or("truncated length")?;
        rest = r;
        if octets.first() == Some(&0) {
            return Err("length not minimal");
        }
        let len = octets
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return Err("length not minimal");
        }
        len
    };
    let (value, rest) = rest.split_at_checked(len).ok_or("truncated value")?;
    let raw_len = input.len() - rest.len();
    let raw = input.get(..raw_len).ok_or("truncated value")?;
    Ok((Tlv { tag, value, raw }, rest))
}

/// Reads exactly one TLV of `tag`; trailing bytes are an error.
pub(crate) fn read_single(input: &[u8], tag: u8) -> Result<Tlv<'_>, &'static str> {
    let (tlv, rest) = read_tlv(input)?;
    if !rest.is_empty() {
        return Err("trailing bytes");
    }
    expect_tag(&tlv, tag)?;
    Ok(tlv)
}

/// Reads exactly one TLV of any tag; trailing bytes are an error.
pub(crate) fn read_only(input: &[u8]) -> Result<Tlv<'_>, &'static str> {
    let (tlv, rest) = read_tlv(input)?;
    if rest.is_empty() {
        Ok(tlv)
    } else {
        Err("trailing bytes")
    }
}

/// Dotted text of an OID's contents octets.
pub(crate) fn oid_to_string(value: &[u8]) -> Result<String, &'static str> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    let mut in_arc = false;
    for &b in value {
        // X.690 §8.19.2: an arc's first octet is never 0x80 (a leading zero
        // group): the same OID must have one encoding only.
        if !in_arc && b == 0x80 {
            return Err("OID arc not minimally encoded");
        }
        if acc > (u64::MAX >> 7) {
            return Err("OID arc too large");
        }
        acc = (acc << 7) | u64::from(b & 0x7f);
        in_arc = true;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let (a, b) = match acc {
                    0..=39 => (0, acc),
                    40..=79 => (1, acc - 40),
                    _ => (2, acc - 80),
                };
                arcs.push(a);
                arcs.push(b);
            } else {
                arcs.push(acc);
            }
            acc = 0;
            in_arc = false;
        }
    }
    if in_arc || arcs.is_empty() {
        return Err("truncated OID");
    }
    Ok(arcs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("."))
}

/// Text of a string TLV: every DirectoryString choice (UTF8String,
/// PrintableString, TeletexString, BMPString, UniversalString) and
/// IA5String/VisibleString. PrintableString is checked against its
/// character set; TeletexString is read as Latin-1 (its ASCII subset is
/// what CAs write). `None` for other tags and invalid contents.
pub(crate) fn string_value(tlv: &Tlv<'_>) -> Option<String> {
    match tlv.tag {
        // UTF8String, IA5String, VisibleString
        0x0c | 0x16 | 0x1a => std::str::from_utf8(tlv.value).ok().map(str::to_owned),
        // PrintableString (X.680 §41.4)
        0x13 => tlv
            .value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b))
            .then(|| String::from_utf8_lossy(tlv.value).into_owned()),
        // TeletexString (T61String), as Latin-1
        0x14 => Some(tlv.value.iter().map(|&b| char::from(b)).collect()),
        // UniversalString: UCS-4, big-endian
        0x1c => {
            if !tlv.value.len().is_multiple_of(4) {
                return None;
            }
            tlv.value
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        // BMPString: UTF-16BE
        0x1e => {
            if !tlv.value.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = tlv
                .value
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// All TLVs in `input`, in order.
pub(crate) fn read_all(mut input: &[u8]) -> Result<Vec<Tlv<'_>>, &'static str> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = read_tlv(input)?;
        out.push(tlv);
        input = rest;
    }
    Ok(out)
}

/// Refuses `tlv` unless it has `tag`.
pub(crate) fn expect_tag(tlv: &Tlv<'_>, tag: u8) -> Result<(), &'static str> {
    if tlv.tag == tag {
        Ok(())
    } else {
        Err("unexpected tag")
    }
}

/// The contents of an OID TLV equal those of the encoded `expected` OID.
pub(crate) fn is_oid(tlv: &Tlv<'_>, expected: &[u8]) -> bool {
    tlv.tag == OID && tlv.raw == expected
}

/// A small non-negative INTEGER's value.
pub(crate) fn small_integer_value(tlv: &Tlv<'_>) -> Result<u8, &'static str> {
    expect_tag(tlv, INTEGER)?;
    match tlv.value {
        [v] if *v < 0x80 => Ok(*v),
        _ => Err("INTEGER out of range"),
    }
}

/// Reads an AlgorithmIdentifier: its OID encoding, with parameters absent or
/// NULL (anything else is refused).
pub(crate) fn read_algorithm<'a>(tlv: &Tlv<'a>) -> Result<Tlv<'a>, &'static str> {
    expect_tag(tlv, SEQUENCE)?;
    match read_all(tlv.value)?.as_slice() {
        [id] if id.tag == OID => Ok(*id),
        [id, params] if id.tag == OID && params.tag == NULL && params.value.is_empty() => Ok(*id),
        _ => Err("AlgorithmIdentifier with unexpected parameters"),
    }
}

/// Unix seconds of a UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), the DER forms RFC 5280 allows.
pub(crate) fn read_time(tlv: &Tlv<'_>) -> Result<i64, &'static str> {
    let (year, rest) = match tlv.tag {
        UTC_TIME => {
            let (yy, rest) = tlv.value.split_at_checked(2).ok_or("time too short")?;
            let yy = digits(yy)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, rest)
        }
        GENERALIZED_TIME => {
            let (yyyy, rest) = tlv.value.split_at_checked(4).ok_or("time too short")?;
            (digits(yyyy)?, rest)
        }
        _ => return Err("not a time"),
    };
    let [m1, m2, d1, d2, h1, h2, i1, i2, s1, s2, b'Z'] = rest else {
        return Err("time not in DER form (…MMDDHHMMSSZ)");
    };
    let month = digits(&[*m1, *m2])?;
    let day = digits(&[*d1, *d2])?;
    let hour = digits(&[*h1, *h2])?;
    let minute = digits(&[*i1, *i2])?;
    let second = digits(&[*s1, *s2])?;
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err("time field out of range");
    }
    let days = days_from_civil(year, month, day);
    Ok(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn digits(text: &[u8]) -> Result<i64, &'static str> {
    text.iter().try_fold(0i64, |acc, &c| {
        if c.is_ascii_digit() {
            Ok(acc * 10 + i64::from(c - b'0'))
        } else {
            Err("time has a non-digit")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for n in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536] {
            let content = vec![7u8; n];
            let enc = tlv(OCTET_STRING, &content);
            let got = read_single(&enc, OCTET_STRING).map(|t| t.value.len());
            assert_eq!(got, Ok(n));
        }
        // Non-minimal lengths are not DER.
        assert!(read_tlv(&[0x04, 0x81, 0x01, 0x00]).is_err());
        assert!(read_tlv(&[0x04, 0x82, 0x00, 0x80]).is_err());
        assert!(read_tlv(&[0x04, 0x80]).is_err());
    }

    #[test]
    fn oids_encode() {
        assert_eq!(
            oid("1.2.840.113549.1.7.2"),
            [
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02
            ]
        );
        assert_eq!(
            oid("2.16.840.1.101.3.4.2.1"),
            [
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01
            ]
        );
        assert_eq!(oid("x"), [0x06, 0x00]);
    }

    #[test]
    fn times_round_trip() {
        for t in [
            0i64,
            951_782_400,
            1_780_000_000,
            2_524_607_999,
            2_524_608_000,
            -631_152_000,
        ] {
            let enc = time(t).unwrap_or_default();
            let back = read_single(&enc, enc.first().copied().unwrap_or(0))
                .and_then(|tlv| read_time(&tlv));
            assert_eq!(back, Ok(t), "time {t}");
        }
        let bad = tlv(UTC_TIME, b"260230000000Z");
        assert!(
            read_time(&read_single(&bad, UTC_TIME).unwrap_or(Tlv {
                tag: 0,
                value: &[],
                raw: &[]
            }))
            .is_err()
        );
    }

    #[test]
    fn oid_round_trip() {
        // 1.0.17090.0.1
        assert_eq!(
            oid_to_string(&[0x28, 0x81, 0x85, 0x42, 0x00, 0x01]).as_deref(),
            Ok("1.0.17090.0.1")
        );
        assert!(oid_to_string(&[0x28, 0x81]).is_err());
        // 1.0.17090.0.1 with a leading 0x80 group in the third arc.
        assert!(oid_to_string(&[0x28, 0x80, 0x81, 0x85, 0x42, 0x00, 0x01]).is_err());
        assert!(oid_to_string(&[0x80, 0x28]).is_err());
        assert!(oid_to_string(&[]).is_err());
    }

    #[test]
    fn hostile_lengths() {
        assert!(read_tlv(&[]).is_err());
        assert!(read_tlv(&[0x30]).is_err());
        assert!(read_tlv(&[0x30, 0x85, 1, 2, 3, 4, 5]).is_err());
        assert!(read_tlv(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(read_tlv(&[0x30, 0x80, 0, 0]).is_err());
        assert!(read_tlv(&[0x30, 0x03, 1]).is_err());
        assert!(read_only(&[0x05, 0x00, 0x00]).is_err());
        assert_eq!(
            read_only(&[0x05, 0x00]),
            Ok(Tlv {
                tag: 0x05,
                value: &[],
                raw: &[0x05, 0x00],
            })
        );
    }
}
