//! A minimal DER reader for the few structures x509-parser leaves opaque
//! (subjectDirectoryAttributes, hcRole). Bounds-checked, never panics; only
//! single-byte tags and definite lengths up to four length octets.

/// One TLV: the identifier octet and the contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub value: &'a [u8],
}

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const OID: u8 = 0x06;

impl Tlv<'_> {
    /// Context-specific class ([n]).
    pub fn context_number(&self) -> Option<u8> {
        (self.tag & 0xc0 == 0x80).then_some(self.tag & 0x1f)
    }

    pub fn is_constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }
}

/// Reads one TLV from the front of `input`; returns it and the rest.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), &'static str> {
    let (&tag, rest) = input.split_first().ok_or("truncated: no tag")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte tags are not supported");
    }
    let (&first, mut rest) = rest.split_first().ok_or("truncated: no length")?;
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
        octets
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (value, rest) = rest.split_at_checked(len).ok_or("truncated value")?;
    Ok((Tlv { tag, value }, rest))
}

/// Reads exactly one TLV; trailing bytes are an error.
pub(crate) fn read_single(input: &[u8]) -> Result<Tlv<'_>, &'static str> {
    let (tlv, rest) = read_tlv(input)?;
    if rest.is_empty() {
        Ok(tlv)
    } else {
        Err("trailing bytes")
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

/// Dotted text of an OID's contents octets.
pub(crate) fn oid_to_string(value: &[u8]) -> Result<String, &'static str> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    let mut in_arc = false;
    for &b in value {
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

/// Text of a string TLV (UTF8String, PrintableString, IA5String, BMPString,
/// T61String as Latin-1 is not attempted).
pub(crate) fn string_value(tlv: &Tlv<'_>) -> Option<String> {
    match tlv.tag {
        // UTF8String, PrintableString, IA5String, VisibleString
        0x0c | 0x13 | 0x16 | 0x1a => std::str::from_utf8(tlv.value).ok().map(str::to_owned),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oid_round_trip() {
        // 1.0.17090.0.1
        assert_eq!(
            oid_to_string(&[0x28, 0x81, 0x85, 0x42, 0x00, 0x01]).as_deref(),
            Ok("1.0.17090.0.1")
        );
        assert!(oid_to_string(&[0x28, 0x81]).is_err());
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
        assert!(read_single(&[0x05, 0x00, 0x00]).is_err());
        assert_eq!(
            read_single(&[0x05, 0x00]),
            Ok(Tlv {
                tag: 0x05,
                value: &[]
            })
        );
    }
}
