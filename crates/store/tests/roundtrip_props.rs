//! Property: whatever is appended (any values, series present in any subset
//! of frames, any group size, reopen in the middle) reads back bit for bit
//! through `series`, and the `samples` view counts the same samples.

use memlens_model::series::{Entity, Labels};
use memlens_store::{Store, StoreOptions, Value};
use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

static CASE: AtomicU64 = AtomicU64::new(0);

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        (0u64..1 << 40).prop_map(|v| (v * 4096) as f64),
        (-1000i64..1000, 0u32..4).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
        Just(f64::NAN),
        Just(-0.0),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn appended_samples_read_back(
        frames in proptest::collection::vec(
            (1i64..5000, proptest::collection::vec(proptest::option::of(value()), 6)),
            1..60,
        ),
        frames_per_group in 1u32..20,
        reopen_at in 0usize..60,
    ) {
        let dir = std::env::temp_dir().join(format!(
            "memlens-store-prop-{}-{}",
            std::process::id(),
            CASE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let options = StoreOptions { frames_per_group, ..StoreOptions::default() };
        let mut store = Store::open_with(&dir, options.clone()).unwrap();
        let mut expected: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 6];
        let mut ts = 0i64;
        let mut ids = Vec::new();
        for (i, (step, values)) in frames.iter().enumerate() {
            if i == reopen_at {
                drop(store);
                store = Store::open_with(&dir, options.clone()).unwrap();
            }
            ts += step;
            ids.clear();
            for k in 0..6 {
                let e = store.entity(&Entity::Process { pid: k / 3, start_time: 9 }, &Labels::new()).unwrap();
                ids.push(store.series_id(e, &format!("m{}", k % 3)).unwrap());
            }
            let batch: Vec<(u64, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(k, v)| v.map(|v| (ids[k], v)))
                .collect();
            for (k, v) in values.iter().enumerate() {
                if let Some(v) = v {
                    expected[k].push((ts, *v));
                }
            }
            store.append(ts, &batch).unwrap();
            store.commit().unwrap();
        }
        for (k, want) in expected.iter().enumerate() {
            let got = store.series_by_id(ids[k], i64::MIN, i64::MAX).unwrap();
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                prop_assert_eq!(g.0, w.0);
                prop_assert_eq!(g.1.to_bits(), w.1.to_bits());
            }
        }
        let total: usize = expected.iter().map(Vec::len).sum();
        let q = store.query("SELECT count(*) FROM samples").unwrap();
        prop_assert_eq!(&q.rows[0][0], &Value::Integer(total as i64));
        let report = store.integrity_check().unwrap();
        prop_assert!(report.is_ok(), "{:?}", report.problems);
        prop_assert_eq!(report.samples, total as u64);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
