use super::*;

const T0: i64 = 1_700_000_000_123_456_789;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    read(path).lines().map(str::to_owned).collect()
}

#[test]
fn complete_lines_become_full_records_with_nano_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c/0.log");
    let mut log = CriLog::create(&path, 0, 1).unwrap();
    log.write(Stream::Stdout, b"hello\nwor", T0).unwrap();
    log.write(Stream::Stderr, b"oops\r\n", T0 + 1).unwrap();
    log.write(Stream::Stdout, b"ld\n\n", T0 + 2).unwrap();
    assert_eq!(
        lines(&path),
        vec![
            "2023-11-14T22:13:20.123456789Z stdout F hello",
            "2023-11-14T22:13:20.123456790Z stderr F oops",
            "2023-11-14T22:13:20.123456791Z stdout F world",
            "2023-11-14T22:13:20.123456791Z stdout F ",
        ]
    );
}

#[test]
fn carriage_return_split_across_reads_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut log = CriLog::create(&path, 0, 1).unwrap();
    log.write(Stream::Stdout, b"dos\r", T0).unwrap();
    log.write(Stream::Stdout, b"\n", T0).unwrap();
    assert_eq!(
        lines(&path),
        vec!["2023-11-14T22:13:20.123456789Z stdout F dos"]
    );
}

#[test]
fn unfinished_line_at_end_of_stream_is_written_as_partial() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut log = CriLog::create(&path, 0, 1).unwrap();
    log.write(Stream::Stderr, b"no newline", T0).unwrap();
    assert_eq!(read(&path), "");
    log.finish(Stream::Stdout, T0).unwrap();
    assert_eq!(read(&path), "", "finishing another stream writes nothing");
    log.finish(Stream::Stderr, T0).unwrap();
    assert_eq!(
        lines(&path),
        vec!["2023-11-14T22:13:20.123456789Z stderr P no newline"]
    );
    log.finish(Stream::Stderr, T0).unwrap();
    assert_eq!(lines(&path).len(), 1, "a second finish writes nothing");
}

#[test]
fn line_longer_than_16_kib_is_split_into_partial_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut log = CriLog::create(&path, 0, 1).unwrap();
    let mut line = vec![b'a'; MAX_LINE];
    line.extend(vec![b'b'; MAX_LINE]);
    line.extend(b"ccc\n");
    // Fed in odd-sized chunks, as pipes deliver it.
    for chunk in line.chunks(5000) {
        log.write(Stream::Stdout, chunk, T0).unwrap();
    }
    let got = read(&path);
    let recs: Vec<Record<'_>> = got
        .lines()
        .map(|l| parse_record(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    assert!(recs[0].partial && recs[1].partial && !recs[2].partial);
    assert_eq!(recs[0].content, &vec![b'a'; MAX_LINE][..]);
    assert_eq!(recs[1].content, &vec![b'b'; MAX_LINE][..]);
    assert_eq!(recs[2].content, b"ccc");
}

#[test]
fn line_of_exactly_16_kib_is_one_full_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut log = CriLog::create(&path, 0, 1).unwrap();
    log.write(Stream::Stdout, &vec![b'x'; MAX_LINE], T0)
        .unwrap();
    log.write(Stream::Stdout, b"\n", T0).unwrap();
    let got = read(&path);
    let recs: Vec<Record<'_>> = got
        .lines()
        .map(|l| parse_record(l.as_bytes()).unwrap())
        .collect();
    assert_eq!(recs.len(), 1);
    assert!(!recs[0].partial);
    assert_eq!(recs[0].content.len(), MAX_LINE);
}

#[test]
fn rotation_keeps_max_files_and_each_file_under_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("3.log");
    // Each record is 30 (timestamp) + 1 + 6 + 3 + 10 + 1 = 51 bytes.
    let mut log = CriLog::create(&path, 160, 3).unwrap();
    for n in 0..20 {
        log.write(Stream::Stdout, format!("line {n:05}\n").as_bytes(), T0)
            .unwrap();
    }
    let files = log_files_oldest_first(&path, 3);
    assert_eq!(
        files,
        vec![rotated_path(&path, 2), rotated_path(&path, 1), path.clone()]
    );
    assert!(!rotated_path(&path, 3).exists());
    assert_eq!(rotated_path(&path, 1), dir.path().join("3.log.1"));
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 160, "{} has {len} bytes", f.display());
    }
    // 3 records per file; the newest 20 % 3 = 2 in N.log; reading oldest
    // first gives consecutive lines ending with the last one.
    let all: Vec<String> = files.iter().flat_map(|f| lines(f)).collect();
    assert_eq!(lines(&path).len(), 2);
    assert_eq!(all.len(), 8);
    for (i, l) in all.iter().enumerate() {
        assert!(l.ends_with(&format!("line {:05}", 12 + i)), "{l}");
    }
}

#[test]
fn rotation_with_one_file_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut log = CriLog::create(&path, 120, 1).unwrap();
    for n in 0..5 {
        log.write(Stream::Stderr, format!("line {n:05}\n").as_bytes(), T0)
            .unwrap();
    }
    assert!(!rotated_path(&path, 1).exists());
    let got = lines(&path);
    assert_eq!(got.len(), 1);
    assert!(got[0].ends_with("stderr F line 00004"));
}

#[test]
fn reopening_an_existing_log_appends_and_counts_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut log = CriLog::create(&path, 110, 2).unwrap();
    log.write(Stream::Stdout, b"first line\n", T0).unwrap();
    drop(log);
    let mut log = CriLog::create(&path, 110, 2).unwrap();
    log.write(Stream::Stdout, b"second lin\n", T0).unwrap();
    assert_eq!(lines(&path).len(), 2);
    log.write(Stream::Stdout, b"third line\n", T0).unwrap();
    assert_eq!(lines(&rotated_path(&path, 1)).len(), 2);
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn parse_record_rejects_malformed_lines() {
    assert_eq!(parse_record(b"garbage"), None);
    assert_eq!(parse_record(b"2023-11-14T22:13:20Z stdin F x"), None);
    assert_eq!(parse_record(b"2023-11-14T22:13:20Z stdout X x"), None);
    let r = parse_record(b"2023-11-14T22:13:20Z stdout F a b ").unwrap();
    assert_eq!(r.content, b"a b ");
    assert_eq!(r.stream, Stream::Stdout);
    let r = parse_record(b"2023-11-14T22:13:20Z stderr P").unwrap();
    assert!(r.partial && r.content.is_empty());
}
