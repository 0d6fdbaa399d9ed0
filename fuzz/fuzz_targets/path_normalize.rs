//! The path normaliser, UUID shapes, tokens and exempt-path matching on arbitrary paths.
#![no_main]
use aiwaf_engine::path::{NormalizedPath, tokens, uuid_shape};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let p = NormalizedPath::new(&s);
    // Normalising is idempotent and always rooted.
    assert!(p.once.starts_with('/'));
    assert!(NormalizedPath::new(&p.once).once.len() <= p.once.len() + 1);
    let _ = uuid_shape(&p.once);
    if let Some(twice) = &p.twice {
        let _ = uuid_shape(twice);
    }
    let _: usize = tokens(&p.once).count();
    let _ = aiwaf_engine::config::is_browser_auto_path(&p.once);
});
