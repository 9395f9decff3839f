//! Where tract spends its time on a model: each node of the optimised plan
//! timed over many runs, summed by operator, on one thread.
//!
//! ```sh
//! cargo run --release -p med8k-detect --example profile -- models/endoscope-patch/med8k-endoscope-patch.onnx [RUNS]
//! ```
//!
//! Prints the plan's total time per run and the operators by their share.

use std::collections::BTreeMap;
use std::time::Instant;

use tract_onnx::prelude::*;

fn main() -> TractResult<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: profile MODEL.onnx [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(50);
    let contract = med8k_detect::contract::Contract::for_model(
        std::path::Path::new(path),
        &std::fs::read(path)?,
    )?;
    let shape: TVec<usize> = contract.input.shape.iter().copied().collect();
    let plan = tract_onnx::onnx()
        .model_for_path(path)?
        .with_input_fact(0, f32::fact(&shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let n: usize = shape.iter().product();
    let input: Tensor = tract_ndarray::Array::from_shape_vec(
        shape.to_vec(),
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect(),
    )?
    .into();
    let mut state = plan.spawn()?;
    state.run(tvec!(input.clone().into()))?;
    let mut by_node: BTreeMap<usize, (String, String, f64)> = BTreeMap::new();
    let t0 = Instant::now();
    for _ in 0..runs {
        state.run_plan_with_eval(tvec!(input.clone().into()), |s, op_state, node, inputs| {
            let t = Instant::now();
            let r = tract_onnx::tract_core::plan::eval(s, op_state, node, inputs);
            let e = by_node
                .entry(node.id)
                .or_insert_with(|| (node.op().name().to_string(), node.name.clone(), 0.0));
            e.2 += t.elapsed().as_secs_f64();
            r
        })?;
    }
    let total = t0.elapsed().as_secs_f64() / runs as f64;
    let mut by_op: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for (op, _, t) in by_node.values() {
        let e = by_op.entry(op.clone()).or_default();
        e.0 += t / runs as f64;
        e.1 += 1;
    }
    let mut ops: Vec<_> = by_op.into_iter().collect();
    ops.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
    println!(
        "{path}: {:.3} ms per run ({} nodes in the plan)",
        total * 1e3,
        by_node.len()
    );
    for (op, (t, count)) in ops.iter().take(15) {
        println!(
            "{op:28} {count:4} nodes {:8.3} ms {:5.1} %",
            t * 1e3,
            100.0 * t / total
        );
    }
    let mut nodes: Vec<_> = by_node.values().collect();
    nodes.sort_by(|a, b| b.2.total_cmp(&a.2));
    println!("slowest nodes:");
    for (op, name, t) in nodes.iter().take(12) {
        println!("  {op:24} {name:40} {:8.3} ms", t / runs as f64 * 1e3);
    }
    Ok(())
}
