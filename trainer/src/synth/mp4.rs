// SPDX-License-Identifier: MIT OR Apache-2.0
//! MP4 files made reproducible: mp4mux writes the wall-clock time of the run into the movie, track and media headers,
//! so the same frames give other bytes each run. `odm-train clip` sets those times to zero ("unknown" in ISO/IEC
//! 14496-12) after muxing.

/// Sets the creation and modification times of the movie, track and media headers of an MP4 (`moov/mvhd`,
/// `moov/trak/tkhd`, `moov/trak/mdia/mdhd`) to zero, in place; returns how many headers it set. A box structure that
/// does not add up is an error, and nothing is changed then.
pub fn zero_times(mp4: &mut [u8]) -> Result<usize, String> {
    /// The boxes in `b` (at byte `at` of the file) inside `parent` (None: the file's top level).
    fn walk(b: &[u8], at: usize, parent: Option<&[u8; 4]>, set: &mut Vec<(usize, usize)>) -> Result<(), String> {
        let mut i = 0;
        while i < b.len() {
            let bad = |what: &str| format!("not an MP4: {what} at byte {}", at + i);
            let left = b.len() - i;
            if left < 8 {
                return Err(bad("a truncated box header"));
            }
            let small = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as u64;
            let kind = [b[i + 4], b[i + 5], b[i + 6], b[i + 7]];
            let (head, size) = match small {
                0 => (8, left as u64),
                1 if left >= 16 => {
                    (16, u64::from_be_bytes(b[i + 8..i + 16].try_into().map_err(|_| bad("a 64-bit size"))?))
                }
                1 => return Err(bad("a truncated 64-bit box size")),
                n => (8, n),
            };
            if size < head as u64 || size > left as u64 {
                return Err(bad(&format!("a box of {size} bytes in {left} left")));
            }
            let (body, end) = (i + head, i + size as usize);
            // Only the path to the three headers is walked: a file of nested boxes cannot run the stack out.
            match (parent, &kind) {
                (None, b"moov") | (Some(b"moov"), b"trak") | (Some(b"trak"), b"mdia") => {
                    walk(&b[body..end], at + body, Some(&kind), set)?
                }
                (Some(b"moov"), b"mvhd") | (Some(b"trak"), b"tkhd") | (Some(b"mdia"), b"mdhd") => {
                    // Version and flags (4 bytes), then the two times: 4 bytes each (version 0) or 8 (version 1).
                    let n = match b[body..end].first() {
                        None => return Err(bad("an empty header")),
                        Some(0) => 8,
                        Some(1) => 16,
                        Some(v) => return Err(bad(&format!("a header of version {v}"))),
                    };
                    if end - body < 4 + n {
                        return Err(bad("a truncated header"));
                    }
                    set.push((at + body + 4, n));
                }
                _ => {}
            }
            i = end;
        }
        Ok(())
    }
    let mut set = Vec::new();
    walk(mp4, 0, None, &mut set)?;
    for &(at, n) in &set {
        mp4[at..at + n].fill(0);
    }
    Ok(set.len())
}

#[cfg(test)]
mod tests {
    use super::zero_times;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    /// A header: version, flags, the two times (all bytes 0xAB), then 4 more bytes of 0xCD.
    fn header(kind: &[u8; 4], version: u8) -> Vec<u8> {
        let n = if version == 1 { 16 } else { 8 };
        let mut body = vec![version, 0, 0, 0];
        body.extend(std::iter::repeat_n(0xAB, n));
        body.extend([0xCD; 4]);
        boxed(kind, &body)
    }

    fn movie() -> Vec<u8> {
        let mdia = boxed(b"mdia", &header(b"mdhd", 0));
        let trak = boxed(b"trak", &[header(b"tkhd", 1), mdia].concat());
        let moov = boxed(b"moov", &[header(b"mvhd", 0), trak].concat());
        [boxed(b"ftyp", b"isom\xAB\xAB\xAB\xAB"), boxed(b"mdat", &[0xAB; 32]), moov].concat()
    }

    #[test]
    fn the_three_headers_lose_their_times_and_nothing_else_changes() {
        let before = movie();
        let mut after = before.clone();
        assert_eq!(zero_times(&mut after), Ok(3));
        // Only the time bytes (0xAB inside the three headers) changed: 8 + 16 + 8 of them.
        let changed: Vec<usize> = (0..before.len()).filter(|&i| before[i] != after[i]).collect();
        assert_eq!(changed.len(), 32);
        assert!(changed.iter().all(|&i| before[i] == 0xAB && after[i] == 0));
        // The ftyp and mdat bytes that look like times stay.
        assert_eq!(after[..56].iter().filter(|&&b| b == 0xAB).count(), 36);
        let mut again = after.clone();
        assert_eq!(zero_times(&mut again), Ok(3));
        assert_eq!(again, after);
    }

    #[test]
    fn a_box_structure_that_does_not_add_up_is_an_error_and_changes_nothing() {
        let good = movie();
        for cut in [good.len() - 3, good.len() - 30, 5] {
            let mut b = good[..cut].to_vec();
            let kept = b.clone();
            let err = zero_times(&mut b).expect_err("a cut file");
            assert!(err.starts_with("not an MP4"), "{err}");
            assert_eq!(b, kept);
        }
        // Headers found before the fault are not set either.
        let late_faults = [
            [good.clone(), vec![0; 3]].concat(),
            [good.clone(), boxed(b"moov", &[header(b"mvhd", 0), boxed(b"trak", &header(b"tkhd", 7))].concat())]
                .concat(),
            [good.clone(), boxed(b"moov", &boxed(b"mvhd", &[0]))].concat(),
        ];
        for mut b in late_faults {
            let kept = b.clone();
            let err = zero_times(&mut b).expect_err("a fault after the headers");
            assert!(err.starts_with("not an MP4"), "{err}");
            assert_eq!(b, kept);
        }
        assert_eq!(zero_times(&mut Vec::new()), Ok(0));
        // Headers only where the format puts them; deep nesting is not walked (nor the stack run out).
        let mut astray = boxed(b"trak", &header(b"tkhd", 0));
        assert_eq!(zero_times(&mut astray), Ok(0));
        let (inner, depth) = (header(b"mvhd", 0), 100_000);
        let mut deep = Vec::with_capacity(8 * depth + inner.len());
        for k in 0..depth {
            deep.extend(((8 * (depth - k) + inner.len()) as u32).to_be_bytes());
            deep.extend(b"moov");
        }
        deep.extend(&inner);
        assert_eq!(zero_times(&mut deep), Ok(0));
    }
}
