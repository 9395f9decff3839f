//! Unit tests of the scene: determinism, legal ranges, truth vs mask,
//! config and plane validation.

use super::*;

fn cfg(seed: u64) -> SceneConfig {
    SceneConfig {
        width: 256,
        height: 144,
        frames: 30,
        seed,
    }
}

fn hash(b: &FrameBuffers) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |v: u64| {
        h ^= v;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    b.y.iter().for_each(|&v| eat(u64::from(v)));
    b.cb.iter().for_each(|&v| eat(u64::from(v) << 16));
    b.cr.iter().for_each(|&v| eat(u64::from(v) << 32));
    b.mask.iter().for_each(|&v| eat(u64::from(v) << 48));
    h
}

fn render(scene: &EndoscopeScene, i: u32) -> (FrameBuffers, FrameTruth) {
    let mut b = FrameBuffers::new(scene);
    let t = scene.render(i, &mut b.planes()).unwrap();
    (b, t)
}

#[test]
fn scene_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<EndoscopeScene>();
}

#[test]
fn deterministic_across_thread_counts() {
    let scene = EndoscopeScene::new(cfg(7)).unwrap();
    let mut hashes = Vec::new();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let hs: Vec<u64> = pool.install(|| {
            (0..30)
                .step_by(7)
                .map(|i| hash(&render(&scene, i).0))
                .collect()
        });
        hashes.push(hs);
    }
    assert_eq!(hashes[0], hashes[1]);
    assert_eq!(hashes[0], hashes[2]);
    // A second scene from the same config renders the same frames.
    let again = EndoscopeScene::new(cfg(7)).unwrap();
    assert_eq!(hash(&render(&again, 7).0), hashes[0][1]);
    // Different frames and seeds differ.
    assert_ne!(hashes[0][0], hashes[0][1]);
    let other = EndoscopeScene::new(cfg(8)).unwrap();
    assert_ne!(hash(&render(&other, 0).0), hashes[0][0]);
}

#[test]
fn values_in_legal_range() {
    let scene = EndoscopeScene::new(cfg(3)).unwrap();
    for i in [0, 5, 10, 17, 29] {
        let (b, _) = render(&scene, i);
        assert!(b.y.iter().all(|&v| (64..=940).contains(&v)));
        assert!(b.cb.iter().all(|&v| (64..=960).contains(&v)));
        assert!(b.cr.iter().all(|&v| (64..=960).contains(&v)));
        assert!(b.mask.iter().all(|&v| v == 0 || v == 255));
        // Bright tissue in the middle, black in the corner.
        let w = b.width as usize;
        let h = b.height as usize;
        assert!(b.y[h / 2 * w + w / 2] > 200, "centre too dark");
        assert!(b.y[0] < 72, "corner not black");
    }
}

#[test]
fn truth_matches_mask_and_clip_has_both() {
    for seed in [0, 1, 2, 42, 0xdead_beef] {
        let scene = EndoscopeScene::new(cfg(seed)).unwrap();
        let (mut anomalous, mut normal) = (0, 0);
        for i in 0..30 {
            let (b, t) = render(&scene, i);
            let count = b.mask.iter().filter(|&&m| m == 255).count() as u64;
            assert_eq!(t.mask_pixels, count);
            assert_eq!(t.anomalous, count > 0);
            assert_eq!(t.anomalous, !t.lesions.is_empty());
            if t.anomalous {
                anomalous += 1;
            } else {
                normal += 1;
            }
        }
        assert!(
            anomalous >= 1 && normal >= 1,
            "seed {seed}: {anomalous} anomalous, {normal} normal"
        );
    }
}

#[test]
fn both_lesion_kinds_occur() {
    let mut seen = (false, false);
    let c = SceneConfig {
        width: 128,
        height: 72,
        frames: 400,
        seed: 11,
    };
    let scene = EndoscopeScene::new(c).unwrap();
    let mut anomalous = 0;
    for i in 0..c.frames {
        let (_, t) = render(&scene, i);
        anomalous += u32::from(t.anomalous);
        seen.0 |= t.lesions.contains(&LesionKind::RaisedRedPatch);
        seen.1 |= t.lesions.contains(&LesionKind::Bleeding);
        if !scene.scheduled_lesions(i).is_empty() {
            assert!(t.anomalous, "frame {i}: scheduled lesion not visible");
        }
    }
    assert!(seen.0 && seen.1);
    let frac = f64::from(anomalous) / f64::from(c.frames);
    assert!((0.2..0.45).contains(&frac), "anomalous fraction {frac}");
}

#[test]
fn bad_configs_rejected() {
    let ok = cfg(1);
    let bad = [
        SceneConfig { width: 255, ..ok },
        SceneConfig { width: 62, ..ok },
        SceneConfig { width: 0, ..ok },
        SceneConfig { height: 63, ..ok },
        SceneConfig { frames: 0, ..ok },
        SceneConfig { width: 16386, ..ok },
        SceneConfig {
            height: 16385,
            ..ok
        },
    ];
    for c in bad {
        assert!(EndoscopeScene::new(c).is_err(), "{c:?} accepted");
    }
    assert!(
        EndoscopeScene::new(SceneConfig {
            width: 64,
            height: 64,
            ..ok
        })
        .is_ok()
    );
}

#[test]
fn small_planes_and_bad_index_rejected() {
    let scene = EndoscopeScene::new(cfg(1)).unwrap();
    let mut b = FrameBuffers::new(&scene);
    assert!(scene.render(30, &mut b.planes()).is_err());
    let w = b.width as usize;
    {
        let mut p = b.planes();
        p.y_stride = w - 2;
        assert!(scene.render(0, &mut p).is_err());
    }
    {
        let mut p = b.planes();
        p.c_stride = w / 2 - 1;
        assert!(scene.render(0, &mut p).is_err());
    }
    let FrameBuffers {
        y, cb, cr, mask, ..
    } = &mut b;
    let n = y.len();
    let cn = cb.len();
    let mut p = FramePlanes {
        y: &mut y[..n - 1],
        y_stride: w,
        cb: &mut cb[..],
        cr: &mut cr[..],
        c_stride: w / 2,
        mask: &mut mask[..],
    };
    assert!(scene.render(0, &mut p).is_err());
    let mut p = FramePlanes {
        y: &mut y[..],
        y_stride: w,
        cb: &mut cb[..cn - 1],
        cr: &mut cr[..],
        c_stride: w / 2,
        mask: &mut mask[..],
    };
    assert!(scene.render(0, &mut p).is_err());
    let mut short = vec![0u8; 10];
    let mut p = FramePlanes {
        y: &mut y[..],
        y_stride: w,
        cb: &mut cb[..],
        cr: &mut cr[..],
        c_stride: w / 2,
        mask: &mut short,
    };
    assert!(scene.render(0, &mut p).is_err());
    // The full-size planes still work.
    assert!(scene.render(0, &mut b.planes()).is_ok());
}

#[test]
fn odd_sizes_and_extreme_indices_render() {
    for (w, h, frames, i) in [
        (64, 64, 1, 0),
        (66, 200, 3, 2),
        (1000, 64, 10, 9),
        (64, 64, u32::MAX, u32::MAX - 1),
        (96, 80, u32::MAX, 4_000_000_000),
    ] {
        let scene = EndoscopeScene::new(SceneConfig {
            width: w,
            height: h,
            frames,
            seed: u64::MAX,
        })
        .unwrap();
        let (b, t) = render(&scene, i);
        let count = b.mask.iter().filter(|&&m| m == 255).count() as u64;
        assert_eq!(t.mask_pixels, count);
        assert!(b.y.iter().all(|&v| (64..=940).contains(&v)));
        assert!(
            scene
                .render(frames - 1, &mut FrameBuffers::new(&scene).planes())
                .is_ok()
        );
    }
}

#[test]
fn strided_planes_match_packed() {
    let c = SceneConfig {
        width: 130,
        height: 67,
        frames: 20,
        seed: 5,
    };
    let scene = EndoscopeScene::new(c).unwrap();
    let (w, h) = (130usize, 67usize);
    for i in [0, 9] {
        let (packed, t0) = render(&scene, i);
        let (ys, cs) = (w + 6, w / 2 + 3);
        let mut y = vec![0u16; ys * (h - 1) + w];
        let mut cb = vec![0u16; cs * (h - 1) + w / 2];
        let mut cr = cb.clone();
        let mut mask = vec![0u8; packed.mask.len()];
        let t1 = scene
            .render(
                i,
                &mut FramePlanes {
                    y: &mut y,
                    y_stride: ys,
                    cb: &mut cb,
                    cr: &mut cr,
                    c_stride: cs,
                    mask: &mut mask,
                },
            )
            .unwrap();
        assert_eq!(t0, t1);
        assert_eq!(mask, packed.mask);
        for r in 0..h {
            assert_eq!(&y[r * ys..r * ys + w], &packed.y[r * w..(r + 1) * w]);
            assert_eq!(
                &cb[r * cs..r * cs + w / 2],
                &packed.cb[r * w / 2..(r + 1) * w / 2]
            );
            assert_eq!(
                &cr[r * cs..r * cs + w / 2],
                &packed.cr[r * w / 2..(r + 1) * w / 2]
            );
        }
    }
}
