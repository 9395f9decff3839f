//! [`GpuEncoder`]: pictures in, compressed slices out.

use std::sync::Arc;

use med8k_gpu::{GpuContext, GpuError, Resident, SampleLayout};
use med8k_media::picture::Picture;

use super::*;
use crate::geometry::Geometry;
use crate::{Coded, EncodeBackend, EncodeError, Params, Steps};

/// An [`EncodeBackend`] on the GPU.
///
/// A picture too large for the device's buffers (8K on lavapipe, whose
/// storage bindings stop at 128 MiB) is coded in stripes of whole slices,
/// one after the other; slices are independent, so the bytes are the same.
#[derive(Debug)]
pub struct GpuEncoder {
    codec: GpuCodec,
    stripes: Vec<Stripe>,
    resident: Option<usize>,
}

/// A run of whole slices coded on its own (the whole picture when it fits).
#[derive(Debug)]
struct Stripe {
    first: u32,
    slices: u32,
    /// `None` when the frame was produced on the GPU.
    pic: Option<Picture>,
}

impl GpuEncoder {
    /// An encoder on `ctx`'s device.
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        GpuEncoder {
            codec: GpuCodec::new(ctx),
            stripes: Vec::new(),
            resident: None,
        }
    }

    /// Prepare for pictures of `params` and return the buffer frames are
    /// read from: planes of u16, two per 32-bit word, each plane starting on
    /// a word. A producer on the GPU writes frames there and calls
    /// [`load_resident`](Self::load_resident) instead of uploading.
    pub fn input_buffer(&mut self, params: &Params) -> Result<&wgpu::Buffer, EncodeError> {
        Ok(&self
            .codec
            .plan_for(params)
            .map_err(EncodeError::from)?
            .samples)
    }

    /// True when the loaded picture was too big for the device's bindings
    /// and is coded in stripes (it cannot be resident then).
    pub fn is_striped(&self) -> bool {
        self.stripes.len() > 1
    }

    /// The loaded picture's samples, still on the GPU in the codec's input
    /// layout, and where its planes lie; `None` before a load and when the
    /// picture is [striped](Self::is_striped).
    ///
    /// The forward transforms read this buffer and write only coefficients,
    /// and coding does not touch it, so it holds the picture from
    /// [`load`](EncodeBackend::load) (or [`load_resident`](Self::load_resident))
    /// until the next one: a detector can make its input from it
    /// (`med8k_detect::gpu_input`) before or after the encode. The buffer
    /// belongs to this encoder's device ([`context`](Self::context)).
    pub fn resident_input(&self) -> Option<(&wgpu::Buffer, SampleLayout)> {
        if self.stripes.len() != 1 || self.resident != Some(0) {
            return None;
        }
        let plan = self.codec.plan.as_ref()?;
        let p = plan.params;
        Some((
            &plan.samples,
            SampleLayout {
                layout: p.layout,
                width: p.width,
                height: p.height,
                bit_depth: p.bit_depth,
            },
        ))
    }

    /// The context the encoder runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        self.codec.context()
    }

    /// Transform the frame already in [`input_buffer`](Self::input_buffer).
    pub fn load_resident(&mut self, params: &Params) -> Result<(), EncodeError> {
        self.codec.plan_for(params).map_err(EncodeError::from)?;
        self.stripes = vec![Stripe {
            first: 0,
            slices: params.height.div_ceil(params.slice_height),
            pic: None,
        }];
        self.resident = Some(0);
        let codec = &self.codec;
        let plan = codec.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
        codec.run(&plan.forward, |_| {});
        Ok(())
    }

    /// Make stripe `i` the one in the GPU's buffers.
    fn make_resident(&mut self, i: usize, geom: &Geometry) -> Result<(), EncodeError> {
        if self.resident == Some(i) {
            return Ok(());
        }
        let stripe = self
            .stripes
            .get(i)
            .ok_or(GpuError::Internal("no picture loaded"))?;
        let pic = stripe
            .pic
            .as_ref()
            .ok_or(GpuError::Internal("the resident frame was replaced"))?;
        let params = params_of(pic, geom);
        self.codec.plan_for(&params).map_err(EncodeError::from)?;
        let codec = &self.codec;
        let plan = codec.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
        codec.upload(plan, pic);
        codec.run(&plan.forward, |_| {});
        self.resident = Some(i);
        Ok(())
    }
}

fn params_of(pic: &Picture, geom: &Geometry) -> Params {
    Params {
        layout: pic.layout(),
        width: pic.width(),
        height: pic.height(),
        bit_depth: pic.bit_depth(),
        levels: geom.levels,
        slice_height: geom.slice_height,
        lossless: true,
    }
}

impl EncodeBackend for GpuEncoder {
    fn resident(&self) -> Option<Resident<'_>> {
        let (samples, layout) = self.resident_input()?;
        Some(Resident {
            ctx: self.codec.context(),
            samples,
            layout,
        })
    }

    fn on_gpu(&self) -> bool {
        true
    }

    fn load(&mut self, pic: &Picture, geom: &Geometry) -> Result<(), EncodeError> {
        let params = params_of(pic, geom);
        let limit = self
            .codec
            .ctx
            .device
            .limits()
            .max_storage_buffer_binding_size;
        let parts = stripes(&params, limit);
        self.stripes.clear();
        self.resident = None;
        if parts.len() == 1 {
            // The whole picture fits: upload it straight from the caller's planes.
            self.codec.plan_for(&params).map_err(EncodeError::from)?;
            let codec = &self.codec;
            let plan = codec.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
            codec.upload(plan, pic);
            codec.run(&plan.forward, |_| {});
            self.stripes.push(Stripe {
                first: 0,
                slices: geom.slices,
                pic: None,
            });
            self.resident = Some(0);
            return Ok(());
        } else {
            for (first, n) in parts {
                let sub = stripe_of(pic, geom.slice_height, first, n).map_err(EncodeError::from)?;
                self.stripes.push(Stripe {
                    first,
                    slices: n,
                    pic: Some(sub),
                });
            }
        }
        self.make_resident(0, geom)
    }

    fn block_words(
        &mut self,
        geom: &Geometry,
        table: &[u32],
        slices: &[u32],
    ) -> Result<Vec<u32>, EncodeError> {
        let mut out = Vec::new();
        for i in 0..self.stripes.len() {
            let (first, n) = (self.stripes[i].first, self.stripes[i].slices);
            let local: Vec<u32> = slices
                .iter()
                .filter(|&&s| s >= first && s < first + n)
                .map(|&s| s - first)
                .collect();
            if local.is_empty() {
                continue;
            }
            self.make_resident(i, geom)?;
            let uniform = Steps::uniform(table.to_vec(), n);
            out.extend(self.stripe_block_words(&uniform, &local)?);
        }
        Ok(out)
    }

    fn encode(&mut self, geom: &Geometry, steps: &Steps) -> Result<Coded, EncodeError> {
        let mut coded = Coded::default();
        for i in 0..self.stripes.len() {
            self.make_resident(i, geom)?;
            let (first, n) = (self.stripes[i].first, self.stripes[i].slices);
            let part = self.stripe_encode(&steps.stripe(first, n))?;
            coded.payload.extend_from_slice(&part.payload);
            coded.slice_lens.extend_from_slice(&part.slice_lens);
        }
        Ok(coded)
    }
}

impl GpuEncoder {
    /// The resident stripe's plan, with `steps` uploaded for its slices.
    fn plan_with_steps(&self, steps: &Steps) -> Result<(&GpuCodec, &Plan), EncodeError> {
        let codec = &self.codec;
        let plan = codec
            .plan
            .as_ref()
            .ok_or(GpuError::Internal("load first"))?;
        codec
            .ctx
            .queue
            .write_buffer(&plan.steps, 0, bytemuck::cast_slice(&steps.gpu_words()));
        Ok((codec, plan))
    }

    /// Block sizes of the resident stripe's `slices` (numbered within the stripe).
    fn stripe_block_words(
        &mut self,
        steps: &Steps,
        slices: &[u32],
    ) -> Result<Vec<u32>, EncodeError> {
        let (codec, plan) = self.plan_with_steps(steps)?;
        let geom = &plan.geom;
        let nb = geom.blocks.len() as u64;
        codec.run([&plan.measure], |enc| {
            enc.copy_buffer_to_buffer(&plan.lens, 0, &plan.small_read, 0, 4 * nb.max(1));
        });
        let bytes = codec
            .read(&plan.small_read, 4 * nb)
            .map_err(EncodeError::from)?;
        let lens: &[u32] = bytemuck::cast_slice(&bytes);
        Ok(slices
            .iter()
            .flat_map(|&s| {
                let (a, b) = (
                    geom.slice_blocks[s as usize] as usize,
                    geom.slice_blocks[s as usize + 1] as usize,
                );
                lens[a..b].iter().copied()
            })
            .collect())
    }

    /// Code the resident stripe: the head the scan writes (the payload's
    /// words and each slice's), then the payload.
    fn stripe_encode(&mut self, steps: &Steps) -> Result<Coded, EncodeError> {
        let (codec, plan) = self.plan_with_steps(steps)?;
        let geom = &plan.geom;
        let head = u64::from(plan.head_words);
        let all = std::iter::once(&plan.write).chain(&plan.gather);
        codec.run(all, |enc| {
            enc.copy_buffer_to_buffer(&plan.out, 0, &plan.small_read, 0, 4 * head);
        });
        let bytes = codec
            .read(&plan.small_read, 4 * head)
            .map_err(EncodeError::from)?;
        let words: &[u32] = bytemuck::cast_slice(&bytes);
        let total = u64::from(words[0]);
        let slice_lens: Vec<u32> = words[1..1 + geom.slices as usize]
            .iter()
            .map(|w| 4 * w)
            .collect();
        let sum: u64 = slice_lens.iter().map(|&l| u64::from(l)).sum();
        if sum != 4 * total || 4 * total > plan.out.size() {
            return Err(GpuError::Inconsistent(format!(
                "gathered {} bytes but the slices add up to {sum}",
                4 * total
            ))
            .into());
        }
        let payload = codec
            .read_back(&plan.out, 4 * head, 4 * total)
            .map_err(EncodeError::from)?;
        Ok(Coded {
            payload,
            slice_lens,
        })
    }
}
