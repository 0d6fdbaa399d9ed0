//! The access-log line parser, every format, on arbitrary bytes.
#![no_main]
use aiwaf_train::parse::{LogFormat, detect_format, parse_line, parse_time};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [LogFormat::Combined, LogFormat::CombinedRt, LogFormat::ApacheD, LogFormat::Auto] {
        let _ = parse_line(data, format);
    }
    let _ = parse_time(data);
    let _ = detect_format(data.split(|&b| b == b'\n'));
});
