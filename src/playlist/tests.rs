use std::path::Path;

use super::*;

const FILE: &str = "/srv/lists/2026-12-03.json";

fn json(text: &str) -> Result<Playlist, PlaylistError> {
    parse_json(text, Path::new(FILE))
}

#[test]
fn an_ffplayout_playlist_parses_with_its_own_keys_ignored() {
    let p = json(
        r#"{
          "channel": "Channel 1",
          "date": "2026-12-03",
          "program": [
            {"in": 0, "out": 647.68, "duration": 647.68, "source": "clips/a.ts", "title": "News",
             "category": "", "custom_filter": ""},
            {"in": 2.5, "out": 10, "duration": 30.0, "source": "/media/b.ts", "audio": ""}
          ]
        }"#,
    )
    .unwrap();
    assert_eq!(p.kind, Kind::Json);
    assert_eq!(p.channel.as_deref(), Some("Channel 1"));
    assert_eq!(p.date, Some((2026, 12, 3)));
    assert_eq!(p.items.len(), 2);
    assert_eq!(p.items[0].source, Path::new("/srv/lists/clips/a.ts"));
    assert_eq!(p.items[0].title.as_deref(), Some("News"));
    assert_eq!(p.items[1].source, Path::new("/media/b.ts"));
    assert_eq!(p.items[1].planned_s(), Some(7.5));
    assert!(!p.looped);
    assert_eq!(p.time_zone, UtcOffset::UTC);
    assert_eq!(p.day_start, TimeOfDay::MIDNIGHT);
    // One note per ignored key (title is shown, not ignored).
    assert_eq!(p.notes.len(), 3, "{:?}", p.notes);
    assert!(p
        .notes
        .iter()
        .any(|n| n.contains("item 2") && n.contains("audio")));
}

#[test]
fn tandem_keys_parse() {
    let p = json(
        r#"{"loop": true, "filler": "filler.ts", "time_zone": "+01:00", "day_start": "06:00:00",
            "program": [{"source": "a.ts"}, {"source": "b.ts", "start": "18:00:00.5"},
                        {"source": "c.ts", "start": "18:30:00.125"}]}"#,
    )
    .unwrap();
    assert!(p.looped);
    assert_eq!(p.filler.as_deref(), Some(Path::new("/srv/lists/filler.ts")));
    assert_eq!(p.time_zone, UtcOffset(60));
    assert_eq!(p.day_start, TimeOfDay(6 * 3_600_000));
    assert_eq!(p.items[0].start, None);
    assert_eq!(p.items[0].out_s, None);
    assert_eq!(p.items[1].start, Some(TimeOfDay(18 * 3_600_000 + 500)));
    assert_eq!(p.items[2].start.unwrap().to_string(), "18:30:00.125");
}

/// Every mistake names the file, the item and the key.
#[test]
fn mistakes_name_the_item_and_the_key() {
    let cases: &[(&str, usize, &str, &str)] = &[
        (
            r#"{"program": [{"source": "a.ts"}, {"source": "b.ts", "strat": "18:00:00"}]}"#,
            2,
            "strat",
            "unknown key",
        ),
        (
            r#"{"program": [{"source": "a.ts", "in": -1}]}"#,
            1,
            "in",
            ">= 0",
        ),
        (
            r#"{"program": [{"source": "a.ts", "in": 5, "out": 5}]}"#,
            1,
            "out",
            "not after",
        ),
        (
            r#"{"program": [{"source": "a.ts", "out": 50, "duration": 40}]}"#,
            1,
            "out",
            "past the clip's duration",
        ),
        (
            r#"{"program": [{"source": "a.ts", "in": "0"}]}"#,
            1,
            "in",
            "number of seconds",
        ),
        (r#"{"program": [{"in": 0}]}"#, 1, "source", "missing"),
        (
            r#"{"program": [{"source": "http://x/a.ts"}]}"#,
            1,
            "source",
            "remote",
        ),
        (
            r#"{"program": [{"source": "a.ts", "start": "25:00:00"}]}"#,
            1,
            "start",
            "time of day",
        ),
        (
            r#"{"program": [{"source": "a.ts", "start": "18:00:00"}, {"source": "b", "start": "17:00:00"}]}"#,
            2,
            "start",
            "not after item 1",
        ),
        (
            r#"{"program": [{"source": "a.ts"}], "lop": true}"#,
            0,
            "lop",
            "unknown key",
        ),
        (
            r#"{"program": [{"source": "a.ts"}], "loop": "yes"}"#,
            0,
            "loop",
            "true or false",
        ),
        (
            r#"{"program": [{"source": "a.ts"}], "date": "2026-02-30"}"#,
            0,
            "date",
            "not a date",
        ),
        (
            r#"{"program": [{"source": "a.ts"}], "time_zone": "Europe/Berlin"}"#,
            0,
            "time_zone",
            "zone names",
        ),
        (
            r#"{"program": [{"source": "a.ts"}], "day_start": "6:00"}"#,
            0,
            "day_start",
            "time of day",
        ),
        (r#"{"program": []}"#, 0, "program", "empty"),
        (r#"{"channel": "x"}"#, 0, "program", "missing"),
        (r#"{"program": ["a.ts"]}"#, 1, "", "must be an object"),
    ];
    for (text, item, key, needle) in cases {
        let e = json(text).unwrap_err();
        assert_eq!((e.item, e.key.as_str()), (*item, *key), "{text}: {e}");
        let s = e.to_string();
        assert!(s.starts_with(FILE), "{s}");
        assert!(s.contains(needle), "{text}: {s}");
        if *item > 0 {
            assert!(s.contains(&format!("item {item}: ")), "{s}");
        }
    }
}

#[test]
fn a_json_syntax_error_has_its_line() {
    let e = json("{\n  \"program\": [\n    {\"source\": \"a.ts\",}\n  ]\n}").unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{FILE}:3: not valid JSON")),
        "{e}"
    );
}

#[test]
fn m3u_is_one_clip_per_line() {
    let p = parse_m3u(
        "#EXTM3U\n#EXTINF:10,First\nclips/a.ts\n\n/media/b.ts\r\nfile:///media/c.ts\n",
        Path::new("/srv/list.m3u"),
    )
    .unwrap();
    let got: Vec<&Path> = p.items.iter().map(|i| i.source.as_path()).collect();
    assert_eq!(
        got,
        [
            Path::new("/srv/clips/a.ts"),
            Path::new("/media/b.ts"),
            Path::new("/media/c.ts")
        ]
    );
    let e = parse_m3u("a.ts\nhttp://x/b.ts\n", Path::new("l.m3u")).unwrap_err();
    assert_eq!((e.line, e.item), (2, 2));
    assert!(parse_m3u("#EXTM3U\n", Path::new("l.m3u")).is_err());
}

#[test]
fn sniffing_tells_a_playlist_from_an_asset() {
    let mut ts = vec![0u8; 188 * 3];
    ts[0] = 0x47;
    ts[188] = 0x47;
    assert_eq!(sniff(&ts), Kind::Asset);
    assert_eq!(sniff(b"  {\"program\": []}"), Kind::Json);
    assert_eq!(sniff("\u{feff}{}".as_bytes()), Kind::Json);
    assert_eq!(sniff(b"#EXTM3U\na.ts\n"), Kind::M3u);
    assert_eq!(sniff(b"a.ts\nb.ts\n"), Kind::M3u);
    assert_eq!(sniff(&[0xFF, 0xFE, 0x00, 0x47]), Kind::Asset);
    assert_eq!(sniff(b""), Kind::Asset);
    // A multi-byte character cut at the end of the sample is still text.
    let mut t = "clips/été.ts\n".as_bytes().to_vec();
    t.truncate(9);
    assert_eq!(sniff(&t), Kind::M3u);
    assert!(parse("x", Path::new("a.ts"), Kind::Asset).is_err());
}

#[test]
fn times_and_offsets() {
    assert_eq!(TimeOfDay::parse("23:59:59.999").unwrap().0, 86_399_999);
    assert_eq!(TimeOfDay::parse("00:00:01.5").unwrap().0, 1_500);
    for bad in [
        "24:00:00",
        "1:00:00",
        "00:60:00",
        "00:00:00.1234",
        "00:00:00.",
        "aa:bb:cc",
        "+1:00:00",
    ] {
        assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(UtcOffset::parse("-05:30").unwrap(), UtcOffset(-330));
    assert_eq!(UtcOffset::parse("Z").unwrap(), UtcOffset::UTC);
    for bad in ["+1:00", "+15:00", "05:00", "+05:60", ""] {
        assert!(UtcOffset::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(time::parse_date("2024-02-29").unwrap(), (2024, 2, 29));
    assert!(time::parse_date("2100-02-29").is_err());
    assert!(time::parse_date("2026-13-01").is_err());
}
