//! Anomaly detection on frames and cubes: a hospital's ONNX model behind a
//! checked contract, run with tract.
//!
//! - [`input`]: a frame or cube made into the model's input tensor (the one
//!   preprocessing that training and inference share).

pub mod input;
