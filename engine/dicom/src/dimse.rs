//! DIMSE C-STORE (PS3.7 9.1.1) with dicom-ul: one association, one
//! presentation context per SOP class, each file sent in its own transfer
//! syntax (no transcoding: a PACS that refuses it is an error naming the
//! file).

use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_core::{DataElement, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{ClientAssociationOptions, Pdu};

use crate::error::{PacsError, one_line};

/// A DICOM application entity: `AE@HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AeAddress {
    /// The called AE title.
    pub ae_title: String,
    /// `HOST:PORT`.
    pub socket: String,
}

impl std::str::FromStr for AeAddress {
    type Err = PacsError;
    fn from_str(s: &str) -> Result<Self, PacsError> {
        let bad = |reason: &str| PacsError::Address {
            url: s.to_string(),
            reason: reason.to_string(),
        };
        let (ae, socket) = s.split_once('@').ok_or_else(|| bad("AE@HOST:PORT"))?;
        if ae.is_empty() || ae.len() > 16 || !ae.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(bad("the AE title is 1 to 16 printable ASCII characters"));
        }
        let (host, port) = socket.rsplit_once(':').ok_or_else(|| bad("AE@HOST:PORT"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("AE@HOST:PORT with a port 1-65535"));
        }
        Ok(AeAddress {
            ae_title: ae.to_string(),
            socket: socket.to_string(),
        })
    }
}

impl std::fmt::Display for AeAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.ae_title, self.socket)
    }
}

struct Outgoing {
    path: PathBuf,
    class: String,
    instance: String,
    ts: String,
    dataset: Vec<u8>,
}

fn load(path: &Path) -> Result<Outgoing, PacsError> {
    let obj = crate::import::open(path).map_err(|e| PacsError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let meta = obj.meta();
    let trim = |s: &str| s.trim_end_matches(['\0', ' ']).to_string();
    let ts = trim(meta.transfer_syntax());
    let ts_entry = TransferSyntaxRegistry
        .get(&ts)
        .ok_or_else(|| PacsError::File {
            path: path.to_path_buf(),
            reason: format!("unknown transfer syntax {ts}"),
        })?;
    let mut dataset = Vec::new();
    obj.write_dataset_with_ts(&mut dataset, ts_entry)
        .map_err(|e| PacsError::File {
            path: path.to_path_buf(),
            reason: one_line(&e),
        })?;
    Ok(Outgoing {
        path: path.to_path_buf(),
        class: trim(meta.media_storage_sop_class_uid()),
        instance: trim(meta.media_storage_sop_instance_uid()),
        ts,
        dataset,
    })
}

/// C-STOREs `files` to `to` as `calling_ae`; returns the SOP Instance UIDs
/// stored. Stops at the first file refused (the error names it); the files
/// before it are stored, the rest untouched.
pub fn store(
    to: &AeAddress,
    calling_ae: &str,
    files: &[PathBuf],
    timeout: Duration,
) -> Result<Vec<String>, PacsError> {
    let url = to.to_string();
    let outgoing = files
        .iter()
        .map(|p| load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(calling_ae)
        .called_ae_title(to.ae_title.as_str())
        .connection_timeout(Duration::from_secs(10))
        .read_timeout(timeout)
        .write_timeout(timeout);
    let mut proposed: Vec<(String, String)> = Vec::new();
    for o in &outgoing {
        if !proposed.iter().any(|(c, t)| *c == o.class && *t == o.ts) {
            proposed.push((o.class.clone(), o.ts.clone()));
            options = options.with_presentation_context(o.class.as_str(), vec![o.ts.as_str()]);
        }
    }
    let mut scu = options
        .establish_with(&to.socket)
        .map_err(|e| PacsError::Unreachable {
            url: url.clone(),
            reason: one_line(&e),
        })?;
    let mut stored = Vec::new();
    for (n, o) in outgoing.iter().enumerate() {
        let pc = scu
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.abstract_syntax.trim_end_matches('\0') == o.class
                    && pc.transfer_syntax.trim_end_matches('\0') == o.ts
            })
            .map(|pc| pc.id);
        let Some(pc) = pc else {
            let _ = scu.abort();
            return Err(PacsError::Refused {
                url,
                file: Some(o.path.clone()),
                reason: format!(
                    "no accepted presentation context for SOP class {} in transfer syntax {}",
                    o.class, o.ts
                ),
            });
        };
        let message_id = (n % 0xffff) as u16 + 1;
        let cmd = InMemDicomObject::command_from_element_iter([
            DataElement::new(
                tags::AFFECTED_SOP_CLASS_UID,
                VR::UI,
                dicom_value!(Str, o.class.as_str()),
            ),
            DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [0x0001])),
            DataElement::new(tags::MESSAGE_ID, VR::US, dicom_value!(U16, [message_id])),
            DataElement::new(tags::PRIORITY, VR::US, dicom_value!(U16, [0x0000])),
            DataElement::new(
                tags::COMMAND_DATA_SET_TYPE,
                VR::US,
                dicom_value!(U16, [0x0000]),
            ),
            DataElement::new(
                tags::AFFECTED_SOP_INSTANCE_UID,
                VR::UI,
                dicom_value!(Str, o.instance.as_str()),
            ),
        ]);
        let mut cmd_bytes = Vec::new();
        cmd.write_dataset_with_ts(&mut cmd_bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
            .map_err(|e| PacsError::Protocol {
                url: url.clone(),
                reason: one_line(&e),
            })?;
        let net = |e: &dyn std::fmt::Display| PacsError::Unreachable {
            url: url.clone(),
            reason: one_line(e),
        };
        scu.send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: cmd_bytes,
            }],
        })
        .map_err(|e| net(&e))?;
        {
            use std::io::Write;
            let mut w = scu.send_pdata(pc);
            w.write_all(&o.dataset).map_err(|e| net(&e))?;
            w.finish().map_err(|e| net(&e))?;
        }
        let status = match scu.receive().map_err(|e| net(&e))? {
            Pdu::PData { data } => {
                let first = data.first().ok_or_else(|| PacsError::Protocol {
                    url: url.clone(),
                    reason: "empty C-STORE response".into(),
                })?;
                let rsp = InMemDicomObject::read_dataset_with_ts(
                    &first.data[..],
                    &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
                )
                .map_err(|e| PacsError::Protocol {
                    url: url.clone(),
                    reason: one_line(&e),
                })?;
                rsp.get(tags::STATUS)
                    .and_then(|e| e.to_int::<u16>().ok())
                    .ok_or_else(|| PacsError::Protocol {
                        url: url.clone(),
                        reason: "C-STORE response without Status (0000,0900)".into(),
                    })?
            }
            other => {
                return Err(PacsError::Protocol {
                    url,
                    reason: format!("expected a C-STORE response, got {}", pdu_name(&other)),
                });
            }
        };
        // 0000 success; B000, B007, B006 warnings (stored, coerced).
        if status == 0 || (0xB000..=0xBFFF).contains(&status) {
            stored.push(o.instance.clone());
        } else {
            let _ = scu.abort();
            return Err(PacsError::Refused {
                url,
                file: Some(o.path.clone()),
                reason: format!("C-STORE status {status:04X}H"),
            });
        }
    }
    scu.release().map_err(|e| PacsError::Protocol {
        url: url.clone(),
        reason: one_line(&e),
    })?;
    Ok(stored)
}

fn pdu_name(p: &Pdu) -> &'static str {
    match p {
        Pdu::AbortRQ { .. } => "an A-ABORT",
        Pdu::ReleaseRQ => "an A-RELEASE-RQ",
        Pdu::ReleaseRP => "an A-RELEASE-RP",
        Pdu::AssociationRJ { .. } => "an A-ASSOCIATE-RJ",
        _ => "another PDU",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_why_not() {
        let a: AeAddress = "ORTHANC@127.0.0.1:4242".parse().unwrap();
        assert_eq!(
            (a.ae_title.as_str(), a.socket.as_str()),
            ("ORTHANC", "127.0.0.1:4242")
        );
        for bad in [
            "127.0.0.1:4242",
            "@h:1",
            "A@h",
            "A@h:0",
            "A@h:x",
            "AAAAAAAAAAAAAAAAA@h:1",
        ] {
            assert!(bad.parse::<AeAddress>().is_err(), "{bad}");
        }
    }
}
