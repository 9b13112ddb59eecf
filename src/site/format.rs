//! Pure helpers for the pages: human durations, clock times, transcript cues, chapters, subscribe
//! links and the QR code. They take plain values and return strings, so each edge case has a test.

use std::time::Duration;

use qrcode::render::svg;
use qrcode::QrCode;

/// "12 KB", "1.4 MB": decimal units, as file managers show sizes.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        0..1000 => format!("{bytes} bytes"),
        1000..1_000_000 => format!("{} KB", (bytes + 500) / 1000),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// "16 minutes" style: whole minutes (rounded to the nearest), "N seconds" under a minute, and
/// hours and minutes from an hour up.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    if secs < 60 {
        return plural(secs, "second");
    }
    let minutes = (secs + 30) / 60;
    if minutes < 60 {
        return plural(minutes, "minute");
    }
    match minutes % 60 {
        0 => plural(minutes / 60, "hour"),
        m => format!("{} {}", plural(minutes / 60, "hour"), plural(m, "minute")),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// ISO 8601 duration for `<time datetime>`, in whole seconds: `PT32S`.
pub fn iso_duration(d: Duration) -> String {
    format!("PT{}S", d.as_secs_f64().round() as u64)
}

/// A player position: `1:35`, or `1:02:03` from an hour up.
pub fn clock(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// One transcript cue: where it starts (whole seconds) and its text, without markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    pub start: u64,
    pub speaker: Option<String>,
    pub text: String,
}

impl Cue {
    pub fn clock(&self) -> String {
        clock(self.start)
    }
}

/// A cue line as players show it: WebVTT's cue tags (`<b>`, `<i>`, `<u>`, `<c.class>`, `<v Name>`,
/// `<lang en>`, `<ruby>`, `<rt>`, timestamps like `<00:01.500>`) and SRT's `<font …>` are
/// dropped, the speaker of the first voice tag is returned, and the escapes `&amp;`, `&lt;`,
/// `&gt;` and `&nbsp;` are decoded (the templates escape the text again).
pub fn cue_text(line: &str) -> (String, Option<String>) {
    let mut out = String::with_capacity(line.len());
    let mut speaker = None;
    let mut rest = line;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let is_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '/');
        match after.find('>') {
            Some(end) if is_tag => {
                let tag = &after[..end];
                if let Some(v) = tag.strip_prefix('v').filter(|v| v.starts_with([' ', '.'])) {
                    // `<v Name>` or `<v.class Name>`: the name follows the first space.
                    let name = v.split_once(' ').map_or("", |(_, n)| n.trim());
                    if speaker.is_none() && !name.is_empty() {
                        speaker = Some(name.to_owned());
                    }
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let text = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    (
        text.split_whitespace().collect::<Vec<_>>().join(" "),
        speaker,
    )
}

/// Reads WebVTT or SRT cues. The first voice tag (`<v Name>`) names the speaker; every cue tag
/// is stripped ([`cue_text`]), and the templates escape the text.
pub fn parse_cues(text: &str) -> Vec<Cue> {
    let text = text.replace("\r\n", "\n");
    let mut cues = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines().skip_while(|l| !l.contains("-->"));
        let Some(timing) = lines.next() else { continue };
        let Some(start) = timing.split("-->").next().and_then(parse_timestamp) else {
            continue;
        };
        let mut speaker = None;
        let mut parts = Vec::new();
        for line in lines.map(str::trim).filter(|l| !l.is_empty()) {
            let (text, voice) = cue_text(line);
            if speaker.is_none() {
                speaker = voice;
            }
            if !text.is_empty() {
                parts.push(text);
            }
        }
        if !parts.is_empty() {
            cues.push(Cue {
                start,
                speaker,
                text: parts.join(" "),
            });
        }
    }
    cues
}

/// `00:01:35.000`, `01:35.000` (VTT) or `00:01:35,000` (SRT) to whole seconds.
fn parse_timestamp(s: &str) -> Option<u64> {
    let s = s.split_whitespace().next()?;
    let whole = s.split(['.', ',']).next()?;
    let mut secs = 0u64;
    let fields: Vec<&str> = whole.split(':').collect();
    if fields.len() < 2 || fields.len() > 3 {
        return None;
    }
    for f in fields {
        secs = secs * 60 + f.parse::<u64>().ok()?;
    }
    Some(secs)
}

/// One chapter from `chapters.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chapter {
    pub start: u64,
    pub title: String,
}

impl Chapter {
    pub fn clock(&self) -> String {
        clock(self.start)
    }
}

/// Reads Podcast Namespace JSON chapters; entries without a start time or title are skipped.
pub fn parse_chapters(json: &str) -> Vec<Chapter> {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let Some(list) = value.get("chapters").and_then(|c| c.as_array()) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|c| {
            let start = c.get("startTime")?.as_f64()?;
            let title = c.get("title")?.as_str()?;
            (start >= 0.0).then(|| Chapter {
                start: start.floor() as u64,
                title: title.to_owned(),
            })
        })
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a URL inside a query.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Links that open a feed URL in podcast apps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub feed_url: String,
    pub apple: String,
    pub overcast: String,
    pub pocket_casts: String,
    pub antennapod: String,
}

impl Subscribe {
    pub fn new(feed_url: &str) -> Subscribe {
        let bare = feed_url
            .strip_prefix("https://")
            .or_else(|| feed_url.strip_prefix("http://"))
            .unwrap_or(feed_url);
        Subscribe {
            feed_url: feed_url.to_owned(),
            apple: format!("podcast://{bare}"),
            overcast: format!(
                "overcast://x-callback-url/add?url={}",
                percent_encode(feed_url)
            ),
            pocket_casts: format!("pktc://subscribe/{bare}"),
            antennapod: format!(
                "https://antennapod.org/deeplink/subscribe?url={}",
                percent_encode(feed_url)
            ),
        }
    }
}

/// The QR code of `text` as an inline SVG element (no XML declaration), labelled for screen readers.
pub fn qr_svg(text: &str, label: &str) -> String {
    let Ok(code) = QrCode::new(text.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<svg::Color>()
        .min_dimensions(180, 180)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen(
        "<svg ",
        &format!(
            "<svg role=\"img\" aria-label=\"{}\" ",
            crate::render::notes::escape_html(label)
        ),
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn durations_under_a_minute_are_seconds() {
        assert_eq!(human_duration(secs(0.0)), "0 seconds");
        assert_eq!(human_duration(secs(1.2)), "1 second");
        assert_eq!(human_duration(secs(32.4)), "32 seconds");
        assert_eq!(human_duration(secs(59.4)), "59 seconds");
    }

    #[test]
    fn durations_round_to_whole_minutes() {
        assert_eq!(human_duration(secs(59.6)), "1 minute");
        assert_eq!(human_duration(secs(89.0)), "1 minute");
        assert_eq!(human_duration(secs(90.0)), "2 minutes");
        assert_eq!(human_duration(secs(16.0 * 60.0 + 10.0)), "16 minutes");
        assert_eq!(human_duration(secs(59.0 * 60.0 + 29.0)), "59 minutes");
    }

    #[test]
    fn durations_from_an_hour_show_hours() {
        assert_eq!(human_duration(secs(59.0 * 60.0 + 31.0)), "1 hour");
        assert_eq!(human_duration(secs(125.0 * 60.0)), "2 hours 5 minutes");
        assert_eq!(human_duration(secs(61.0 * 60.0)), "1 hour 1 minute");
    }

    #[test]
    fn clock_and_iso() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(95), "1:35");
        assert_eq!(clock(3723), "1:02:03");
        assert_eq!(iso_duration(secs(31.6)), "PT32S");
    }

    #[test]
    fn vtt_cues_with_voices() {
        let vtt = "WEBVTT\n\n1\n00:00:00.000 --> 00:00:04.000\n<v Eric Pisconski>Hello & welcome.</v>\n\n00:01:35.500 --> 00:01:40.000 align:start\nSecond <b>line</b>\nwraps\n";
        assert_eq!(
            parse_cues(vtt),
            vec![
                Cue {
                    start: 0,
                    speaker: Some("Eric Pisconski".into()),
                    text: "Hello & welcome.".into()
                },
                Cue {
                    start: 95,
                    speaker: None,
                    text: "Second line wraps".into()
                },
            ]
        );
    }

    #[test]
    fn cue_tags_are_stripped_as_players_do() {
        let t = |s| cue_text(s);
        assert_eq!(
            t("<b>bold</b> and <i>italic</i> <u>u</u>"),
            ("bold and italic u".into(), None)
        );
        assert_eq!(
            t("<c.yellow.bg_blue>coloured</c>"),
            ("coloured".into(), None)
        );
        assert_eq!(
            t("<v.loud Mark Sawa>Slow it down.</v>"),
            ("Slow it down.".into(), Some("Mark Sawa".into()))
        );
        assert_eq!(
            t("one <00:00:01.500>two <00:00:02.000>three"),
            ("one two three".into(), None)
        );
        assert_eq!(
            t("<lang en>time</lang> <ruby>x<rt>y</rt></ruby>"),
            ("time xy".into(), None)
        );
        assert_eq!(t("<font color=\"red\">SRT</font>"), ("SRT".into(), None));
        assert_eq!(
            t("a &lt;b&gt; &amp;amp; 3 < 4"),
            ("a <b> &amp; 3 < 4".into(), None)
        );
        assert_eq!(t("5 <> 6"), ("5 <> 6".into(), None));
    }

    #[test]
    fn srt_cues_with_crlf() {
        let srt = "1\r\n00:00:01,000 --> 00:00:02,000\r\nFirst\r\n\r\n2\r\n01:00:00,000 --> 01:00:01,000\r\nLast\r\n";
        let cues = parse_cues(srt);
        assert_eq!(cues.len(), 2);
        assert_eq!((cues[0].start, cues[0].text.as_str()), (1, "First"));
        assert_eq!((cues[1].start, cues[1].text.as_str()), (3600, "Last"));
    }

    #[test]
    fn malformed_cues_are_skipped() {
        assert!(parse_cues("WEBVTT\n\nNOTE nothing here\n\nxx --> yy\ntext\n").is_empty());
    }

    #[test]
    fn chapters_from_json() {
        let json = r#"{"version":"1.2.0","chapters":[{"startTime":0,"title":"Intro"},{"startTime":95.7,"title":"Next"},{"title":"no start"}]}"#;
        assert_eq!(
            parse_chapters(json),
            vec![
                Chapter {
                    start: 0,
                    title: "Intro".into()
                },
                Chapter {
                    start: 95,
                    title: "Next".into()
                }
            ]
        );
        assert!(parse_chapters("not json").is_empty());
    }

    #[test]
    fn subscribe_links() {
        let s = Subscribe::new("https://podcasts.example.org/feeds/a-b.xml");
        assert_eq!(s.apple, "podcast://podcasts.example.org/feeds/a-b.xml");
        assert_eq!(
            s.overcast,
            "overcast://x-callback-url/add?url=https%3A%2F%2Fpodcasts.example.org%2Ffeeds%2Fa-b.xml"
        );
        assert_eq!(
            s.pocket_casts,
            "pktc://subscribe/podcasts.example.org/feeds/a-b.xml"
        );
        assert_eq!(
            s.antennapod,
            "https://antennapod.org/deeplink/subscribe?url=https%3A%2F%2Fpodcasts.example.org%2Ffeeds%2Fa-b.xml"
        );
    }

    #[test]
    fn qr_is_inline_svg() {
        let svg = qr_svg("https://podcasts.example.org/feeds/x.xml", "QR \"code\"");
        assert!(svg.starts_with("<svg role=\"img\" aria-label=\"QR &quot;code&quot;\" "));
        assert!(!svg.contains("<?xml"));
        assert!(svg.ends_with("</svg>"));
    }
}
