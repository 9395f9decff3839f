//! The wire format: framing, body layouts, [`encode`], [`decode`] and a
//! [`MessageReader`] for byte streams.
//!
//! # Framing
//! Every message is one frame:
//!
//! | offset | size | field |
//! | ---: | ---: | --- |
//! | 0 | 2 | magic `"M8"` (`0x4d 0x38`) |
//! | 2 | 1 | wire version, [`WIRE_VERSION`] |
//! | 3 | 1 | message type ([`MessageType`]) |
//! | 4 | 4 | body length `n`, u32, at most the type's [`MessageType::max_body_len`] |
//! | 8 | n | body |
//!
//! Integers are big-endian; `f32` is its IEEE-754 bits as a u32. `str16` is a
//! u16 byte count and UTF-8; `bytes32` a u32 byte count and bytes; `[T; u16]`
//! a u16 count and that many `T`. Enumerations are one byte, counted from 1.
//! A body must be consumed exactly: bytes left over are an error.
//!
//! # Bodies
//! | type | byte | body |
//! | --- | --- | --- |
//! | Hello | 0x01 | version u16, site_id str16, facility_name str16, capabilities u32 |
//! | HelloAck | 0x02 | a Hello body, challenge `[u8; 32]` |
//! | HelloReject | 0x03 | reason u8, supported_version u16, detail str16 |
//! | Auth | 0x10 | count u8, then per token: kind u8, token bytes32 |
//! | AuthResult | 0x11 | 1 = permit; or 2 = deny, reason u8, detail str16 |
//! | FrameHeader | 0x20 | channel u16, seq u64, capture_us u64, codec u8, width u32, height u32, layout u8, bands u16, bit_depth u8, payload_len u32, slices `[(len u32, crc u32); u16]` |
//! | FrameMeta | 0x21 | channel u16, seq u64, score f32, threshold f32, boxes `[(x, y, w, h, score f32, class u16); u16]`, then optionally quality f32, quality_threshold f32 (only to peers with `Capabilities::QUALITY`) |
//! | FramesLost | 0x22 | channel u16, ranges `[(first u64, last u64); u16]` |
//! | Annotation | 0x30 | id u64, study_uid str16, target (1: channel u16, seq u64; 2: object_id u64), shape u8, points `[(x f32, y f32); u16]`, label str16, author str16, text str16 |
//! | Instructions | 0x31 | study_uid str16, document bytes32, signature bytes32 |
//! | LinkStats | 0x40 | rtt_us u32, loss_ppm u32, goodput_bps u64, frames_delivered u64, frames_late u64, frames_lost u64 |
//! | ObjectOffer | 0x50 | id u64, kind u8, size u64, sha256 `[u8; 32]` |
//! | ObjectAck | 0x51 | id u64, offset u64, state u8 |
//! | ObjectData | 0x52 | id u64, offset u64, data bytes32 |
//! | Close | 0x7f | reason u8, detail str16 |
//!
//! A live frame's payload is not a message: `payload_len` raw bytes follow its
//! `FrameHeader` on the frame's own stream.
//!
//! # Decoding
//! [`decode`] looks at a buffer and either commits to one whole message
//! (returning it and the bytes it used), asks for more bytes (`Ok(None)`), or
//! names what is wrong. It checks the header a byte at a time, so a bad magic,
//! version, type or an oversized length is reported as soon as it arrives,
//! never after buffering a body. Counts are checked against their bound and
//! against the bytes left before anything is allocated.

use super::error::ProtoError;
use super::message::*;

/// The frame format version this build writes and reads.
pub const WIRE_VERSION: u8 = 1;
/// The two bytes every frame starts with.
pub const MAGIC: [u8; 2] = *b"M8";
/// Bytes of framing before each body.
pub const HEADER_LEN: usize = 8;
/// The largest frame of any type, header included.
pub const MAX_MESSAGE_LEN: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < MessageType::ALL.len() {
        let len = MessageType::ALL[i].max_body_len();
        if len > max {
            max = len;
        }
        i += 1;
    }
    HEADER_LEN + max
};

/// Appends `msg`, framed, to `out` and returns the bytes written. A message
/// that fails [`Message::validate`] is refused and `out` is left as it was.
pub fn encode(msg: &Message, out: &mut Vec<u8>) -> Result<usize, ProtoError> {
    msg.validate()?;
    let ty = msg.message_type();
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(WIRE_VERSION);
    out.push(ty as u8);
    out.extend_from_slice(&[0; 4]);
    write_body(msg, &mut Writer(out));
    let len = out.len() - start - HEADER_LEN;
    if len > ty.max_body_len() {
        // Unreachable when validate and max_body_len agree; refuse rather than
        // send what the peer will refuse.
        out.truncate(start);
        return Err(ProtoError::TooLong {
            ty,
            len: len as u64,
            max: ty.max_body_len(),
        });
    }
    // len ≤ max_body_len < u32::MAX
    out[start + 4..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out.len() - start)
}

/// `msg`, framed, in a new buffer.
pub fn encode_to_vec(msg: &Message) -> Result<Vec<u8>, ProtoError> {
    let mut out = Vec::new();
    encode(msg, &mut out)?;
    Ok(out)
}

/// Decodes the message at the start of `buf`.
///
/// - `Ok(Some((message, used)))`: a whole valid message occupied `buf[..used]`;
/// - `Ok(None)`: `buf` is a valid beginning of a message, more bytes are needed;
/// - `Err(_)`: `buf` does not start with a valid message, whatever follows.
pub fn decode(buf: &[u8]) -> Result<Option<(Message, usize)>, ProtoError> {
    let Some((ty, body_len)) = peek_header(buf)? else {
        return Ok(None);
    };
    let total = HEADER_LEN + body_len;
    let Some(body) = buf.get(HEADER_LEN..total) else {
        return Ok(None);
    };
    let msg = read_body(ty, body)?;
    Ok(Some((msg, total)))
}

/// Checks as much of the frame header as `buf` holds; returns the type and
/// body length once all of it is there.
fn peek_header(buf: &[u8]) -> Result<Option<(MessageType, usize)>, ProtoError> {
    for (offset, (&found, &expected)) in buf.iter().zip(MAGIC.iter()).enumerate() {
        if found != expected {
            return Err(ProtoError::BadMagic {
                offset,
                found,
                expected,
            });
        }
    }
    if let Some(&version) = buf.get(2)
        && version != WIRE_VERSION
    {
        return Err(ProtoError::UnsupportedVersion {
            found: version,
            supported: WIRE_VERSION,
        });
    }
    let Some(&type_byte) = buf.get(3) else {
        return Ok(None);
    };
    let ty =
        MessageType::from_byte(type_byte).ok_or(ProtoError::UnknownType { found: type_byte })?;
    let Some(len_bytes) = buf.get(4..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let max = ty.max_body_len();
    if len as usize > max {
        return Err(ProtoError::TooLong {
            ty,
            len: len.into(),
            max,
        });
    }
    Ok(Some((ty, len as usize)))
}

/// Accumulates bytes from an ordered stream (the control stream, an object
/// stream, the start of a frame stream) and yields whole messages.
///
/// Its buffer holds at most one partial message (bounded by
/// [`MAX_MESSAGE_LEN`]) plus whatever one [`push`](Self::push) adds; call
/// [`next_message`](Self::next_message) until it returns `Ok(None)` after each push. After an
/// error the stream is unusable and every later call returns the same error.
#[derive(Debug, Default)]
pub struct MessageReader {
    buf: Vec<u8>,
    start: usize,
    failed: Option<ProtoError>,
}

impl MessageReader {
    /// An empty reader.
    pub fn new() -> MessageReader {
        MessageReader::default()
    }

    /// Appends bytes received from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, ProtoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match decode(&self.buf[self.start..]) {
            Ok(Some((msg, used))) => {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(msg))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.start = 0;
                Err(e)
            }
        }
    }

    /// Bytes received and not yet consumed by a message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes the bytes buffered after the last message (for a frame stream:
    /// the start of the payload that followed the header).
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        rest
    }
}

// ---------------------------------------------------------------------------
// Writing

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn f32(&mut self, v: f32) {
        self.u32(v.to_bits());
    }
    fn raw(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    /// Lengths and counts were validated against bounds far below u16::MAX.
    fn count16(&mut self, n: usize) {
        self.u16(n as u16);
    }
    fn str16(&mut self, s: &str) {
        self.count16(s.len());
        self.raw(s.as_bytes());
    }
    fn bytes32(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.raw(b);
    }
}

fn write_hello(w: &mut Writer<'_>, h: &Hello) {
    w.u16(h.version);
    w.str16(&h.site_id);
    w.str16(&h.facility_name);
    w.u32(h.capabilities.0);
}

fn write_body(msg: &Message, w: &mut Writer<'_>) {
    match msg {
        Message::Hello(h) => write_hello(w, h),
        Message::HelloAck(a) => {
            write_hello(w, &a.site);
            w.raw(&a.challenge);
        }
        Message::HelloReject(r) => {
            w.u8(r.reason.code());
            w.u16(r.supported_version);
            w.str16(&r.detail);
        }
        Message::Auth(a) => {
            w.u8(a.tokens.len() as u8);
            for t in &a.tokens {
                w.u8(t.kind.code());
                w.bytes32(&t.bytes);
            }
        }
        Message::AuthResult(AuthDecision::Permit) => w.u8(1),
        Message::AuthResult(AuthDecision::Deny { reason, detail }) => {
            w.u8(2);
            w.u8(reason.code());
            w.str16(detail);
        }
        Message::FrameHeader(h) => {
            w.u16(h.channel);
            w.u64(h.seq);
            w.u64(h.capture_us);
            w.u8(h.codec.code());
            w.u32(h.width);
            w.u32(h.height);
            let (layout, bands) = h.format.layout.code();
            w.u8(layout);
            w.u16(bands);
            w.u8(h.format.bit_depth);
            w.u32(h.payload_len);
            w.count16(h.slices.len());
            for s in &h.slices {
                w.u32(s.len);
                w.u32(s.crc);
            }
        }
        Message::FrameMeta(m) => {
            w.u16(m.channel);
            w.u64(m.seq);
            w.f32(m.score);
            w.f32(m.threshold);
            w.count16(m.boxes.len());
            for b in &m.boxes {
                for v in [b.x, b.y, b.w, b.h, b.score] {
                    w.f32(v);
                }
                w.u16(b.class);
            }
            if let Some(q) = m.quality {
                w.f32(q.value);
                w.f32(q.threshold);
            }
        }
        Message::FramesLost(l) => {
            w.u16(l.channel);
            w.count16(l.ranges.len());
            for r in &l.ranges {
                w.u64(r.first);
                w.u64(r.last);
            }
        }
        Message::Annotation(a) => {
            w.u64(a.id);
            w.str16(&a.study_uid);
            match a.target {
                AnnotationTarget::Frame { channel, seq } => {
                    w.u8(1);
                    w.u16(channel);
                    w.u64(seq);
                }
                AnnotationTarget::Object { object_id } => {
                    w.u8(2);
                    w.u64(object_id);
                }
            }
            w.u8(a.shape.code());
            w.count16(a.points.len());
            for p in &a.points {
                w.f32(p.x);
                w.f32(p.y);
            }
            w.str16(&a.label);
            w.str16(&a.author);
            w.str16(&a.text);
        }
        Message::Instructions(i) => {
            w.str16(&i.study_uid);
            w.bytes32(&i.document);
            w.bytes32(&i.signature);
        }
        Message::LinkStats(s) => {
            w.u32(s.rtt_us);
            w.u32(s.loss_ppm);
            w.u64(s.goodput_bps);
            w.u64(s.frames_delivered);
            w.u64(s.frames_late);
            w.u64(s.frames_lost);
        }
        Message::ObjectOffer(o) => {
            w.u64(o.id);
            w.u8(o.kind.code());
            w.u64(o.size);
            w.raw(&o.sha256);
        }
        Message::ObjectAck(a) => {
            w.u64(a.id);
            w.u64(a.offset);
            w.u8(a.state.code());
        }
        Message::ObjectData(d) => {
            w.u64(d.id);
            w.u64(d.offset);
            w.bytes32(&d.data);
        }
        Message::Close(c) => {
            w.u8(c.reason.code());
            w.str16(&c.detail);
        }
    }
}

// ---------------------------------------------------------------------------
// Reading

/// A cursor over one complete body; every read names its field.
struct Reader<'a> {
    ty: MessageType,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], ProtoError> {
        if n > self.buf.len() {
            return Err(ProtoError::Truncated {
                ty: self.ty,
                field,
                needed: n as u64,
                left: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtoError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, ProtoError> {
        Ok(self.array::<1>(field)?[0])
    }
    fn u16(&mut self, field: &'static str) -> Result<u16, ProtoError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    fn u64(&mut self, field: &'static str) -> Result<u64, ProtoError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    fn f32(&mut self, field: &'static str) -> Result<f32, ProtoError> {
        Ok(f32::from_bits(self.u32(field)?))
    }
    fn code<T>(
        &mut self,
        field: &'static str,
        from_code: fn(u8) -> Option<T>,
    ) -> Result<T, ProtoError> {
        let code = self.u8(field)?;
        from_code(code).ok_or(ProtoError::UnknownCode {
            ty: self.ty,
            field,
            code,
        })
    }
    /// Reads a u16 count, checks it against `min..=max`, and checks that
    /// `count * item_len` bytes are left before anything is allocated.
    fn count16(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
        item_len: usize,
    ) -> Result<usize, ProtoError> {
        let n = usize::from(self.u16(field)?);
        self.check_count(field, n, min, max, item_len)
    }
    fn check_count(
        &self,
        field: &'static str,
        n: usize,
        min: usize,
        max: usize,
        item_len: usize,
    ) -> Result<usize, ProtoError> {
        check_count(self.ty, field, n, min, max)?;
        let needed = n.saturating_mul(item_len);
        if needed > self.buf.len() {
            return Err(ProtoError::Truncated {
                ty: self.ty,
                field,
                needed: needed as u64,
                left: self.buf.len(),
            });
        }
        Ok(n)
    }
    fn str16(&mut self, field: &'static str, max: usize) -> Result<String, ProtoError> {
        let n = self.count16(field, 0, max, 1)?;
        let bytes = self.take(n, field)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| ProtoError::NotUtf8 { ty: self.ty, field })
    }
    fn bytes32(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<Vec<u8>, ProtoError> {
        let n = self.u32(field)?;
        let n = self.check_count(field, n as usize, min, max, 1)?;
        Ok(self.take(n, field)?.to_vec())
    }
    fn finish(&self) -> Result<(), ProtoError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::TrailingBytes {
                ty: self.ty,
                extra: self.buf.len(),
            })
        }
    }
}

fn read_hello(r: &mut Reader<'_>) -> Result<Hello, ProtoError> {
    Ok(Hello {
        version: r.u16("version")?,
        site_id: r.str16("site_id", MAX_SITE_ID_LEN)?,
        facility_name: r.str16("facility_name", MAX_NAME_LEN)?,
        capabilities: Capabilities(r.u32("capabilities")?),
    })
}

fn read_layout(r: &mut Reader<'_>) -> Result<Layout, ProtoError> {
    let code = r.u8("layout")?;
    let bands = r.u16("bands")?;
    let layout = match code {
        1 => Layout::Gray,
        2 => Layout::Rgb,
        3 => Layout::Rgba,
        4 => Layout::Yuv422,
        5 => Layout::Yuv420,
        6 => Layout::Bands(bands),
        _ => {
            return Err(ProtoError::UnknownCode {
                ty: r.ty,
                field: "layout",
                code,
            });
        }
    };
    if code != 6 && bands != 0 {
        return Err(ProtoError::OutOfRange {
            ty: r.ty,
            field: "bands",
            value: bands.to_string(),
            allowed: "0 unless the layout is Bands".to_owned(),
        });
    }
    Ok(layout)
}

fn read_message(r: &mut Reader<'_>) -> Result<Message, ProtoError> {
    Ok(match r.ty {
        MessageType::Hello => Message::Hello(read_hello(r)?),
        MessageType::HelloAck => Message::HelloAck(HelloAck {
            site: read_hello(r)?,
            challenge: r.array("challenge")?,
        }),
        MessageType::HelloReject => Message::HelloReject(HelloReject {
            reason: r.code("reason", RejectReason::from_code)?,
            supported_version: r.u16("supported_version")?,
            detail: r.str16("detail", MAX_DETAIL_LEN)?,
        }),
        MessageType::Auth => {
            let n = usize::from(r.u8("tokens")?);
            let n = r.check_count("tokens", n, 1, MAX_TOKENS, 1 + 4)?;
            let mut tokens = Vec::with_capacity(n);
            for _ in 0..n {
                tokens.push(Token {
                    kind: r.code("token kind", TokenKind::from_code)?,
                    bytes: r.bytes32("token length", 1, MAX_TOKEN_LEN)?,
                });
            }
            Message::Auth(Auth { tokens })
        }
        MessageType::AuthResult => match r.u8("decision")? {
            1 => Message::AuthResult(AuthDecision::Permit),
            2 => Message::AuthResult(AuthDecision::Deny {
                reason: r.code("reason", DenyReason::from_code)?,
                detail: r.str16("detail", MAX_DETAIL_LEN)?,
            }),
            code => {
                return Err(ProtoError::UnknownCode {
                    ty: r.ty,
                    field: "decision",
                    code,
                });
            }
        },
        MessageType::FrameHeader => {
            let channel = r.u16("channel")?;
            let seq = r.u64("seq")?;
            let capture_us = r.u64("capture_us")?;
            let codec = r.code("codec", Codec::from_code)?;
            let width = r.u32("width")?;
            let height = r.u32("height")?;
            let layout = read_layout(r)?;
            let bit_depth = r.u8("bit_depth")?;
            let payload_len = r.u32("payload_len")?;
            let n = r.count16("slices", 0, MAX_SLICES, 8)?;
            let mut slices = Vec::with_capacity(n);
            for _ in 0..n {
                slices.push(Slice {
                    len: r.u32("slice.len")?,
                    crc: r.u32("slice.crc")?,
                });
            }
            Message::FrameHeader(FrameHeader {
                channel,
                seq,
                capture_us,
                codec,
                width,
                height,
                format: PixelFormat { layout, bit_depth },
                slices,
                payload_len,
            })
        }
        MessageType::FrameMeta => {
            let channel = r.u16("channel")?;
            let seq = r.u64("seq")?;
            let score = r.f32("score")?;
            let threshold = r.f32("threshold")?;
            let n = r.count16("boxes", 0, MAX_BOXES, BOX_LEN)?;
            let mut boxes = Vec::with_capacity(n);
            for _ in 0..n {
                boxes.push(BoundingBox {
                    x: r.f32("box.x")?,
                    y: r.f32("box.y")?,
                    w: r.f32("box.w")?,
                    h: r.f32("box.h")?,
                    score: r.f32("box.score")?,
                    class: r.u16("box.class")?,
                });
            }
            // The quality extension: present when bytes remain.
            let quality = if r.buf.is_empty() {
                None
            } else {
                Some(Quality {
                    value: r.f32("quality.value")?,
                    threshold: r.f32("quality.threshold")?,
                })
            };
            Message::FrameMeta(FrameMeta {
                channel,
                seq,
                score,
                threshold,
                boxes,
                quality,
            })
        }
        MessageType::FramesLost => {
            let channel = r.u16("channel")?;
            let n = r.count16("ranges", 1, MAX_LOST_RANGES, 16)?;
            let mut ranges = Vec::with_capacity(n);
            for _ in 0..n {
                ranges.push(SeqRange {
                    first: r.u64("range.first")?,
                    last: r.u64("range.last")?,
                });
            }
            Message::FramesLost(FramesLost { channel, ranges })
        }
        MessageType::Annotation => {
            let id = r.u64("id")?;
            let study_uid = r.str16("study_uid", MAX_UID_LEN)?;
            let target = match r.u8("target")? {
                1 => AnnotationTarget::Frame {
                    channel: r.u16("target.channel")?,
                    seq: r.u64("target.seq")?,
                },
                2 => AnnotationTarget::Object {
                    object_id: r.u64("target.object_id")?,
                },
                code => {
                    return Err(ProtoError::UnknownCode {
                        ty: r.ty,
                        field: "target",
                        code,
                    });
                }
            };
            let shape = r.code("shape", Shape::from_code)?;
            let n = r.count16("points", 0, MAX_POINTS, 8)?;
            let mut points = Vec::with_capacity(n);
            for _ in 0..n {
                points.push(Point {
                    x: r.f32("point.x")?,
                    y: r.f32("point.y")?,
                });
            }
            Message::Annotation(Annotation {
                id,
                study_uid,
                target,
                shape,
                points,
                label: r.str16("label", MAX_LABEL_LEN)?,
                author: r.str16("author", MAX_AUTHOR_LEN)?,
                text: r.str16("text", MAX_TEXT_LEN)?,
            })
        }
        MessageType::Instructions => Message::Instructions(Instructions {
            study_uid: r.str16("study_uid", MAX_UID_LEN)?,
            document: r.bytes32("document", 1, MAX_DOCUMENT_LEN)?,
            signature: r.bytes32("signature", 1, MAX_SIGNATURE_LEN)?,
        }),
        MessageType::LinkStats => Message::LinkStats(LinkStats {
            rtt_us: r.u32("rtt_us")?,
            loss_ppm: r.u32("loss_ppm")?,
            goodput_bps: r.u64("goodput_bps")?,
            frames_delivered: r.u64("frames_delivered")?,
            frames_late: r.u64("frames_late")?,
            frames_lost: r.u64("frames_lost")?,
        }),
        MessageType::ObjectOffer => Message::ObjectOffer(ObjectOffer {
            id: r.u64("id")?,
            kind: r.code("kind", ObjectKind::from_code)?,
            size: r.u64("size")?,
            sha256: r.array("sha256")?,
        }),
        MessageType::ObjectAck => Message::ObjectAck(ObjectAck {
            id: r.u64("id")?,
            offset: r.u64("offset")?,
            state: r.code("state", AckState::from_code)?,
        }),
        MessageType::ObjectData => Message::ObjectData(ObjectData {
            id: r.u64("id")?,
            offset: r.u64("offset")?,
            data: r.bytes32("data length", 1, MAX_CHUNK_LEN)?,
        }),
        MessageType::Close => Message::Close(Close {
            reason: r.code("reason", CloseReason::from_code)?,
            detail: r.str16("detail", MAX_DETAIL_LEN)?,
        }),
    })
}

/// Decodes one complete body of type `ty`: reads every field, requires the
/// body to end exactly there, then applies the semantic checks.
fn read_body(ty: MessageType, body: &[u8]) -> Result<Message, ProtoError> {
    let mut r = Reader { ty, buf: body };
    let msg = read_message(&mut r)?;
    r.finish()?;
    msg.validate()?;
    Ok(msg)
}
