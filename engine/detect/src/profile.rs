//! Where a model spends its time in tract: every node of the optimised plan
//! timed over a number of runs, summed by operator and listed node by node
//! (`med8k eval detect` prints both beside the onnxruntime comparison).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use tract_onnx::prelude::*;

use crate::model::{ModelError, Runner, one_line};

/// Time spent in one kind of operator of the optimised plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpTime {
    /// tract's operator name (after optimisation: `Conv`, `OptMatMul`, ...).
    pub op: String,
    /// Nodes of that operator in the plan.
    pub nodes: usize,
    /// Mean milliseconds per run, all those nodes together.
    pub ms: f64,
}

/// Time spent in one node of the optimised plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeTime {
    /// The node's name in the plan (tract keeps the ONNX node's name, with a
    /// suffix for the nodes an optimisation made of it).
    pub name: String,
    /// Its operator.
    pub op: String,
    /// Mean milliseconds per run.
    pub ms: f64,
}

/// A profile of the plan on one input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    /// Mean milliseconds per whole run (timing each node adds a little).
    pub ms_per_run: f64,
    /// By operator, slowest first.
    pub ops: Vec<OpTime>,
    /// By node, slowest first.
    pub nodes: Vec<NodeTime>,
}

impl Runner {
    /// tract's profile: `runs` runs of the plan on `tensor` as the graph
    /// takes it (no mean/std applied; the values do not change the time), on
    /// the runner's threads, each node timed.
    pub fn profile(&mut self, tensor: &[f32], runs: usize) -> Result<Profile, ModelError> {
        let c = self.model().contract();
        let (ch, h, w) = (c.input.channels(), c.input.height(), c.input.width());
        if tensor.len() != ch * h * w {
            return Err(ModelError::InputLength {
                got: tensor.len(),
                need: ch * h * w,
            });
        }
        let input = Tensor::from_shape(&[1, ch, h, w], tensor)
            .map_err(|e| ModelError::Run(one_line(&e)))?;
        let mut by_node: BTreeMap<usize, (String, String, f64)> = BTreeMap::new();
        let runs = runs.max(1);
        let started = Instant::now();
        for _ in 0..runs {
            self.on_threads(|state| {
                state.run_plan_with_eval(
                    tvec!(input.clone().into()),
                    |s, op_state, node, inputs| {
                        let t = Instant::now();
                        let r = tract_onnx::tract_core::plan::eval(s, op_state, node, inputs);
                        let e = by_node.entry(node.id).or_insert_with(|| {
                            (node.name.clone(), node.op().name().to_string(), 0.0)
                        });
                        e.2 += t.elapsed().as_secs_f64();
                        r
                    },
                )
            })
            .map_err(|e| ModelError::Run(one_line(&e)))?;
        }
        let per_run = |seconds: f64| 1e3 * seconds / runs as f64;
        let ms_per_run = per_run(started.elapsed().as_secs_f64());
        let mut by_op: BTreeMap<String, (usize, f64)> = BTreeMap::new();
        let mut nodes = Vec::with_capacity(by_node.len());
        for (name, op, t) in by_node.into_values() {
            let e = by_op.entry(op.clone()).or_default();
            e.0 += 1;
            e.1 += per_run(t);
            nodes.push(NodeTime {
                name,
                op,
                ms: per_run(t),
            });
        }
        let mut ops: Vec<OpTime> = by_op
            .into_iter()
            .map(|(op, (nodes, ms))| OpTime { op, nodes, ms })
            .collect();
        ops.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        nodes.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        Ok(Profile {
            ms_per_run,
            ops,
            nodes,
        })
    }
}
