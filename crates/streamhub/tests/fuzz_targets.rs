//! The fuzz targets of `fuzz/` (`streamhub::fuzzing`), run on stable as a bounded random-input
//! test: seeded random bytes, and real inputs (recorded WebM, valid payloads) mutated by
//! flipping, overwriting, cutting and repeating bytes. Same seed every run, so a failure
//! reproduces; `FUZZ_CASES` runs more cases (the default keeps the suite under a few seconds).

#![allow(clippy::unwrap_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use streamhub::fuzzing;

fn cases() -> usize {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

/// `seed` changed a little, or random bytes.
fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    match rng.random_range(0..6) {
        0 => (0..rng.random_range(0..2000))
            .map(|_| rng.random())
            .collect(),
        1 if !d.is_empty() => {
            for _ in 0..rng.random_range(1..=8) {
                let i = rng.random_range(0..d.len());
                d[i] ^= 1 << rng.random_range(0..8);
            }
            d
        }
        2 if !d.is_empty() => {
            let i = rng.random_range(0..d.len());
            d[i] = [0x00, 0x01, 0x7f, 0x80, 0xff, b'"', b'{', b'\n'][rng.random_range(0..8)];
            d
        }
        3 => {
            d.truncate(rng.random_range(0..=d.len()));
            d
        }
        4 if !d.is_empty() => {
            let a = rng.random_range(0..d.len());
            let b = rng.random_range(a..d.len());
            [&d[..b], &d[a..]].concat()
        }
        _ => {
            let at = rng.random_range(0..=d.len());
            let junk: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
            d.splice(at..at, junk);
            d
        }
    }
}

fn run(target: fn(&[u8]), seeds: &[Vec<u8>], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    for s in seeds {
        target(s);
    }
    for _ in 0..cases() {
        let base = &seeds[rng.random_range(0..seeds.len())];
        target(&mutate(&mut rng, base));
    }
}

#[test]
fn webm_parser() {
    let with_head = |data: &[u8], limit: u8, chunk: u8| [&[limit, chunk][..], data].concat();
    let vp8 = include_bytes!("fixtures/chrome-vp8.webm");
    let opus = include_bytes!("fixtures/chrome-vp8-opus.webm");
    // Headers and the first clusters: enough to reach every element kind, small enough to run
    // many cases.
    let seeds = vec![
        with_head(&vp8[..vp8.len().min(40_000)], 3, 0),
        with_head(&opus[..opus.len().min(40_000)], 3, 7),
        with_head(&vp8[..4096], 1, 1),
        with_head(&opus[..300], 0, 3),
    ];
    run(fuzzing::webm, &seeds, 0x5eed_0001);
}

#[test]
fn webcodecs_frames() {
    let key = r#"{"streamKey":"sk_fuzz","data":"AAAA","chunk":{"type":"key","timestamp":0},"config":{"codec":"vp8","codedWidth":640,"codedHeight":480}}"#;
    let delta = r#"{"streamKey":"sk_fuzz","data":"AQID","chunk":{"type":"delta","timestamp":33333,"duration":33333}}"#;
    let image = r#"{"streamKey":"sk_fuzz","data":"/9j/4AAQ"}"#;
    let webm =
        r#"{"streamKey":"sk_fuzz","data":"GkXfo59ChoEBQveBAULygQRC84EIQoKEd2VibUKHgQRChYEC"}"#;
    let seeds = vec![
        [key, delta, delta, key, delta].join("\n").into_bytes(),
        [image, image, image].join("\n").into_bytes(),
        [webm, webm].join("\n").into_bytes(),
        [delta, key, image, webm, key].join("\n").into_bytes(),
    ];
    run(fuzzing::webcodecs, &seeds, 0x5eed_0002);
}

#[test]
fn protocol_payloads() {
    let seeds: Vec<Vec<u8>> = [
        r#"{"username":"ana","role":"STREAMER","secret":"s","claim":true,"channelToken":"ct_x"}"#,
        r#"{"username":"bo","role":"VIEWER"}"#,
        r#"{"title":"a title"}"#,
        r#"{"streamKey":"sk_abcdefghij0123456789"}"#,
        r#"{"streamKey":"sk_a","publishToken":"pt_b"}"#,
        r#"{"streamKey":"sk_a","message":"hi"}"#,
        r#"{"streamKey":"sk_a","type":"🔥"}"#,
        "\u{0}\u{0}\u{0}\u{10}{\"text\":true}xyz",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run(fuzzing::protocol, &seeds, 0x5eed_0003);
}
