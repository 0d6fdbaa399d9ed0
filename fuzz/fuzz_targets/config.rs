//! The config loader on arbitrary TOML and AIWAF_* values: an error naming the key, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first line, when it looks like NAME=value, is an environment variable.
    let (env_line, toml) = text.split_once('\n').unwrap_or(("", &text));
    let env = |k: &str| {
        let (name, value) = env_line.split_once('=')?;
        (name == k).then(|| value.to_string())
    };
    let _ = aiwaf::config::Config::from_toml(toml, &env);
    let _ = aiwaf::config::Config::from_toml(&text, &|_| None);
});
