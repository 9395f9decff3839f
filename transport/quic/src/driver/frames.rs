//! Unidirectional streams: one per live frame (its header message then its
//! payload), one per reliable object (its `ObjectData` messages).
//!
//! Sending: the stream gets a priority rising with the sequence number, so
//! quinn sends newer frames' bytes first; if the frame is not acknowledged
//! whole by its deadline the stream is reset ([`codes::FRAME_EXPIRED`]).
//!
//! Receiving: each stream is read by a task of its own; the header is
//! checked against the largest frame accepted before any payload is read;
//! then the reader reserves the payload's length from the link's frame
//! buffer budget (a byte semaphore, waiting while other frames hold it), reads
//! the payload whole (at most the header's length) and hands it, with its
//! reservation, to the session's task, which gives the reservation back once
//! the frame is settled. So the bytes held by frame readers never exceed
//! [`DriverConfig::frame_buffer_budget`](super::DriverConfig::frame_buffer_budget),
//! whatever the number of streams; reserving whole frames (not chunk by
//! chunk) means readers never deadlock each holding part of the budget. A
//! stream that takes longer than the read timeout (waiting included) is
//! stopped and its frame counted lost.
//!
//! Objects: each object's data goes on a stream of its own at a priority
//! below every frame; the receiver hands each message to the session, which
//! checks offsets and the SHA-256 and acknowledges on the control stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::{Connection, ReadError, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, oneshot};

use super::budget::{Budget, Reserved};
use super::codes;
use super::stats::Shared;
use crate::proto::{CallError, FrameHeader, Message, MessageReader, ObjectData};

/// Largest single write of a frame payload.
const WRITE_PIECE: usize = 256 * 1024;

/// What a frame stream's reader hands the session's task.
#[derive(Debug)]
pub(crate) enum FrameInput {
    /// The header arrived.
    Header(FrameHeader),
    /// The whole payload arrived; `permit` holds its bytes of the frame
    /// buffer budget until the session has settled the frame.
    Payload {
        channel: u16,
        seq: u64,
        data: Vec<u8>,
        permit: Option<Reserved>,
    },
    /// The sender reset the stream, or it timed out: the frame is lost.
    Reset { channel: u16, seq: u64 },
    /// An object data message.
    Object(ObjectData),
    /// The stream broke the protocol.
    Violation(String),
}

/// Priority of frame `seq`'s stream while its bytes are being written:
/// newer is higher (wraps after 2³¹ − 1 frames, over a year at 60 frames/s),
/// always below [`REPAIR_PRIORITY`].
fn priority(seq: u64) -> i32 {
    i32::try_from(seq % 0x7fff_ffff).unwrap_or(0)
}

/// Priority of a frame's stream once all its bytes are written: what it
/// still sends are retransmissions of lost packets, which go before any new
/// frame's bytes. Otherwise, under random loss, every frame's repairs wait
/// behind the next frame, which then completes first and makes the older
/// one lost (the newest frame wins): a 1% packet loss would cost a large
/// share of the frames of a stream that fits the link.
const REPAIR_PRIORITY: i32 = i32::MAX;

/// Sends one frame on a new stream; resets it at `deadline` if it is not
/// acknowledged whole by then.
pub(crate) async fn send(
    conn: Connection,
    shared: Arc<Shared>,
    seq: u64,
    deadline: Instant,
    header: Vec<u8>,
    payload: Vec<u8>,
) {
    let _writing = shared.progress.start();
    let deadline = tokio::time::Instant::from_std(deadline);
    let Ok(Ok(mut stream)) = tokio::time::timeout_at(deadline, conn.open_uni()).await else {
        // No stream by the deadline (the peer's stream limit, or the
        // connection is gone): the frame is dropped unsent.
        return;
    };
    let _ = stream.set_priority(priority(seq));
    let done = tokio::time::timeout_at(deadline, write_frame(&mut stream, header, payload)).await;
    match done {
        Ok(Ok(())) => shared.progress.acked(),
        Ok(Err(())) => {}
        Err(_) => {
            let _ = stream.reset(VarInt::from_u32(codes::FRAME_EXPIRED));
        }
    }
}

async fn write_frame(stream: &mut SendStream, header: Vec<u8>, payload: Vec<u8>) -> Result<(), ()> {
    stream.write_chunk(header.into()).await.map_err(drop)?;
    // Handed over without a copy, in pieces, so the connection sends (this
    // frame's header, other frames) while the rest is queued.
    let payload = Bytes::from(payload);
    let mut at = 0;
    while at < payload.len() {
        let end = (at + WRITE_PIECE).min(payload.len());
        stream
            .write_chunk(payload.slice(at..end))
            .await
            .map_err(drop)?;
        at = end;
    }
    stream.finish().map_err(drop)?;
    let _ = stream.set_priority(REPAIR_PRIORITY);
    // Resolves once the peer has every byte (or stopped the stream).
    stream.stopped().await.map_err(drop)?;
    Ok(())
}

/// Reads one incoming unidirectional stream: a live frame (a header, then
/// its payload) or object data (a sequence of `ObjectData` messages).
pub(crate) async fn receive(
    mut stream: RecvStream,
    max_payload: u32,
    read_timeout: Duration,
    budget: Budget,
    tx: mpsc::Sender<FrameInput>,
) {
    let deadline = tokio::time::Instant::now() + read_timeout;
    let mut reader = MessageReader::new();
    let first = tokio::time::timeout_at(deadline, first_message(&mut stream, &mut reader)).await;
    let first = match first {
        Ok(Ok(m)) => m,
        Ok(Err(None)) => return,
        Ok(Err(Some(detail))) => {
            let _ = stream.stop(VarInt::from_u32(codes::FRAME_STOPPED));
            let _ = tx.send(FrameInput::Violation(detail)).await;
            return;
        }
        Err(_) => {
            let _ = stream.stop(VarInt::from_u32(codes::FRAME_STOPPED));
            return;
        }
    };
    match first {
        Message::FrameHeader(header) => {
            let (channel, seq) = (header.channel, header.seq);
            let read = read_frame(&mut stream, header, reader, max_payload, budget, &tx);
            if tokio::time::timeout_at(deadline, read).await.is_err() {
                let _ = stream.stop(VarInt::from_u32(codes::FRAME_STOPPED));
                let _ = tx.send(FrameInput::Reset { channel, seq }).await;
            }
        }
        Message::ObjectData(data) => read_objects(&mut stream, data, reader, &tx).await,
        other => {
            let _ = stream.stop(VarInt::from_u32(codes::FRAME_STOPPED));
            let ty = other.message_type();
            let detail = format!("a unidirectional stream opened with {ty}");
            let _ = tx.send(FrameInput::Violation(detail)).await;
        }
    }
}

/// The stream's first message. `Err(None)`: the stream was reset or the
/// connection is gone; `Err(Some(_))`: a violation.
async fn first_message(
    stream: &mut RecvStream,
    reader: &mut MessageReader,
) -> Result<Message, Option<String>> {
    // The reader holds at most one partial message, bounded by the largest
    // message type's body.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(Some(n)) => {
                reader.push(&buf[..n]);
                match reader.next_message() {
                    Ok(Some(m)) => return Ok(m),
                    Ok(None) => {}
                    Err(e) => return Err(Some(format!("unidirectional stream: {e}"))),
                }
            }
            Ok(None) => return Err(Some("stream ended before its first message".into())),
            Err(_) => return Err(None),
        }
    }
}

async fn read_frame(
    stream: &mut RecvStream,
    header: FrameHeader,
    mut reader: MessageReader,
    max_payload: u32,
    budget: Budget,
    tx: &mpsc::Sender<FrameInput>,
) {
    let (channel, seq, len) = (header.channel, header.seq, header.payload_len);
    if tx.send(FrameInput::Header(header)).await.is_err() {
        return;
    }
    if len > max_payload {
        // The session refuses the header; never read such a payload.
        let _ = stream.stop(VarInt::from_u32(codes::FRAME_STOPPED));
        return;
    }
    // At most `max_payload`, and the budget is never below it: this can
    // only wait for other frames to settle (bounded by the read timeout).
    let permit = if len == 0 {
        None
    } else {
        match budget.reserve(len).await {
            Some(p) => Some(p),
            None => return,
        }
    };
    let len = len as usize;
    let mut data = reader.take_rest();
    if data.len() > len {
        let detail = "frame stream carries more than its payload".to_owned();
        let _ = tx.send(FrameInput::Violation(detail)).await;
        return;
    }
    // The budget already holds `len` bytes for this frame, so reserving
    // them is bounded by our own limit, not by the peer's word alone.
    data.reserve_exact(len - data.len());
    while data.len() < len {
        match stream.read_chunk(len - data.len(), true).await {
            Ok(Some(chunk)) => data.extend_from_slice(&chunk.bytes),
            Ok(None) | Err(ReadError::Reset(_)) => {
                let _ = tx.send(FrameInput::Reset { channel, seq }).await;
                return;
            }
            Err(_) => return,
        }
    }
    let input = FrameInput::Payload {
        channel,
        seq,
        data,
        permit,
    };
    let _ = tx.send(input).await;
}

/// Object data messages, handed on one by one (the session's queue bounds
/// how far this reader runs ahead; flow control does the rest).
async fn read_objects(
    stream: &mut RecvStream,
    first: ObjectData,
    mut reader: MessageReader,
    tx: &mpsc::Sender<FrameInput>,
) {
    if tx.send(FrameInput::Object(first)).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        loop {
            let detail = match reader.next_message() {
                Ok(Some(Message::ObjectData(d))) => {
                    if tx.send(FrameInput::Object(d)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(None) => break,
                Ok(Some(other)) => format!("{} on an object stream", other.message_type()),
                Err(e) => format!("object stream: {e}"),
            };
            let _ = stream.stop(VarInt::from_u32(codes::FRAME_STOPPED));
            let _ = tx.send(FrameInput::Violation(detail)).await;
            return;
        }
        match stream.read(&mut buf).await {
            Ok(Some(n)) => reader.push(&buf[..n]),
            Ok(None) if reader.buffered() > 0 => {
                let detail = "object stream ended inside a message".to_owned();
                let _ = tx.send(FrameInput::Violation(detail)).await;
                return;
            }
            // Finished, reset (the sender's session ended), or gone: the
            // session resumes from what it acknowledged.
            Ok(None) | Err(_) => return,
        }
    }
}

/// What an object stream's writer is asked to do.
#[derive(Debug)]
pub(crate) enum ObjectWrite {
    /// Write an encoded `ObjectData` message.
    Bytes(Vec<u8>),
    /// Answer once everything before is written.
    Flush(oneshot::Sender<Result<(), CallError>>),
}

/// Writes one object's data messages on a stream of its own, below every
/// live frame in priority; finishes it when the queue closes.
pub(crate) async fn send_objects(
    conn: Connection,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<ObjectWrite>,
) {
    let Ok(mut stream) = conn.open_uni().await else {
        return;
    };
    let _ = stream.set_priority(-1);
    while let Some(write) = rx.recv().await {
        match write {
            ObjectWrite::Bytes(bytes) => {
                let _writing = shared.progress.start();
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
                shared.progress.acked();
            }
            ObjectWrite::Flush(reply) => {
                let _ = reply.send(Ok(()));
            }
        }
    }
    let _ = stream.finish();
}
