//! Every kernel parses and validates with naga, without a GPU.

#[test]
fn every_kernel_validates() {
    let modules = med8k_shaders::all();
    assert!(modules.len() >= 5, "no kernels found");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/wgsl");
    let on_disk = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "wgsl"))
            })
            .count()
        })
        .unwrap_or(0);
    assert_eq!(
        on_disk,
        12,
        "a .wgsl file in {} is not embedded (or one is missing)",
        dir.display()
    );
    for (name, src) in modules {
        let module = naga::front::wgsl::parse_str(&src)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&src)));
        let caps = if name.ends_with("_subgroups") {
            naga::valid::Capabilities::SUBGROUP | naga::valid::Capabilities::SUBGROUP_BARRIER
        } else {
            naga::valid::Capabilities::empty()
        };
        let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        v.subgroup_stages(naga::valid::ShaderStages::COMPUTE)
            .subgroup_operations(naga::valid::SubgroupOperationSet::all());
        if let Err(e) = v.validate(&module) {
            panic!("{name}: {}", e.emit_to_string(&src));
        }
        assert!(
            module
                .entry_points
                .iter()
                .all(|e| e.stage == naga::ShaderStage::Compute),
            "{name}: only compute kernels expected"
        );
        assert!(!module.entry_points.is_empty(), "{name}: no entry point");
    }
}
