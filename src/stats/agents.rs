//! Naming the client from its `User-Agent`, with the OPAWG user-agents v2 list (vendored in
//! `data/opawg-user-agents-v2/`, MIT, with its source and licence).
//!
//! Upstream's rule: try bots, then apps, then libraries, then browsers, and take the first entry
//! that matches, in file order. Each file's patterns are compiled once into a `RegexSet`, so a
//! lookup is one pass per file; the lowest matching index is the first entry in file order. A
//! library entry whose `category` is `bot` names a bot. A client that is not a bot may also name
//! its device, from `devices.json`, first match in file order.

use std::sync::LazyLock;

use regex::RegexSet;
use serde::Deserialize;

/// What kind of client an entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bot,
    App,
    Library,
    Browser,
}

/// A client named from its user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agent {
    pub name: &'static str,
    pub kind: Kind,
}

#[derive(Deserialize)]
struct File {
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    name: String,
    pattern: String,
    /// Libraries: `bot` for those only automated clients use.
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    #[cfg_attr(not(test), allow(dead_code))]
    examples: Vec<String>,
}

struct List {
    kind: Kind,
    set: RegexSet,
    names: Vec<&'static str>,
    /// Per entry: its `category` says it is a bot.
    bots: Vec<bool>,
    #[cfg(test)]
    examples: Vec<Vec<String>>,
}

fn list(kind: Kind, json: &str) -> List {
    let file: File = serde_json::from_str(json).expect("the vendored OPAWG file parses");
    let set = RegexSet::new(file.entries.iter().map(|e| &e.pattern))
        .expect("every vendored OPAWG pattern compiles (checked by the tests)");
    List {
        kind,
        set,
        names: file
            .entries
            .iter()
            .map(|e| &*Box::leak(e.name.clone().into_boxed_str()))
            .collect(),
        bots: file
            .entries
            .iter()
            .map(|e| e.category.as_deref() == Some("bot"))
            .collect(),
        #[cfg(test)]
        examples: file.entries.into_iter().map(|e| e.examples).collect(),
    }
}

static LISTS: LazyLock<[List; 4]> = LazyLock::new(|| {
    let dir = |f| match f {
        "bots" => include_str!("../../data/opawg-user-agents-v2/bots.json"),
        "apps" => include_str!("../../data/opawg-user-agents-v2/apps.json"),
        "libraries" => include_str!("../../data/opawg-user-agents-v2/libraries.json"),
        _ => include_str!("../../data/opawg-user-agents-v2/browsers.json"),
    };
    [
        list(Kind::Bot, dir("bots")),
        list(Kind::App, dir("apps")),
        list(Kind::Library, dir("libraries")),
        list(Kind::Browser, dir("browsers")),
    ]
});

/// Devices, for clients that are not bots.
static DEVICES: LazyLock<List> = LazyLock::new(|| {
    list(
        Kind::App,
        include_str!("../../data/opawg-user-agents-v2/devices.json"),
    )
});

/// The client `user_agent` names, if the list knows it.
pub fn identify(user_agent: &str) -> Option<Agent> {
    LISTS.iter().find_map(|l| {
        let first = l.set.matches(user_agent).into_iter().next()?;
        Some(Agent {
            name: l.names[first],
            kind: if l.bots[first] { Kind::Bot } else { l.kind },
        })
    })
}

/// The device `user_agent` names, first match in `devices.json` order.
pub fn device(user_agent: &str) -> Option<&'static str> {
    let first = DEVICES.set.matches(user_agent).into_iter().next()?;
    Some(DEVICES.names[first])
}

/// The IAB guidelines' Apple Watch rule (v2.3, section 5.5.2, step 1.2): a paired watch repeats
/// the phone's download with a user agent that begins `atc/` and includes `watchOS`, or that
/// contains `(null)/(null) watchOS`. Those requests are duplicates and never count.
pub fn is_apple_watch_duplicate(user_agent: &str) -> bool {
    (user_agent.starts_with("atc/") && user_agent.contains("watchOS"))
        || user_agent.contains("(null)/(null) watchOS")
}

/// What measurement needs to know of a client: its name (or "unknown"), whether it is a bot, and
/// its device when one matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub app: &'static str,
    pub bot: bool,
    pub device: Option<&'static str>,
}

/// Names the client for measurement.
pub fn client(user_agent: &str) -> Client {
    let agent = identify(user_agent);
    let bot = agent.is_some_and(|a| a.kind == Kind::Bot);
    Client {
        app: agent.map_or("unknown", |a| a.name),
        bot,
        device: if bot { None } else { device(user_agent) },
    }
}

/// A short name for the client, for the admin's list: the list's name, or "unknown".
pub fn app_name(user_agent: &str) -> &'static str {
    identify(user_agent).map_or("unknown", |a| a.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_every_example_names_its_own_entry() {
        let mut wrong = Vec::new();
        for l in LISTS.iter() {
            for (i, examples) in l.examples.iter().enumerate() {
                for ex in examples {
                    let got = identify(ex);
                    if got.map(|a| a.name) != Some(l.names[i]) {
                        wrong.push(format!("{ex:?}: {got:?}, not {}", l.names[i]));
                    }
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} examples name another entry:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }

    #[test]
    fn agents_every_device_example_matches_its_own_entry() {
        let json = include_str!("../../data/opawg-user-agents-v2/devices.json");
        let file: File = serde_json::from_str(json).unwrap();
        let mut wrong = Vec::new();
        let mut shadowed = Vec::new();
        for e in &file.entries {
            let own = regex::Regex::new(&e.pattern).unwrap();
            for ex in &e.examples {
                if !own.is_match(ex) {
                    wrong.push(format!("{ex:?} does not match {}", e.name));
                } else if device(ex) != Some(e.name.as_str()) {
                    shadowed.push(format!("{ex:?}: {:?}, not {}", device(ex), e.name));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        // Upstream's one known conflict: its Apple Watch example also matches the earlier Apple
        // iPhone entry (`CFNetwork`), and file order wins. Any other is a new upstream change.
        assert_eq!(
            shadowed,
            ["\"Watch/1140 CFNetwork/3860.200.71 Darwin/25.1.0\": Some(\"Apple iPhone\"), not Apple Watch"]
        );
    }

    #[test]
    fn agents_library_bots_and_apple_watch_duplicates() {
        let c = client("Python/3.10 aiohttp/3.9.3");
        assert!(c.bot, "{c:?}");
        let c = client("AppleCoreMedia/1.0.0.20G75 (iPhone; U; CPU OS 16_6 like Mac OS X; en_us)");
        assert!(!c.bot);
        assert_eq!(c.device, Some("Apple iPhone"));
        assert!(is_apple_watch_duplicate(
            "atc/1.0 watchOS/7.1 model/Watch5,1 hwp/t8006 build/18R590 (6; dt:201)"
        ));
        assert!(is_apple_watch_duplicate(
            "(null)/(null) watchOS/5.0.1 model/Watch3,3 hwp/t8004 build/16R381 (6; dt:155)"
        ));
        assert!(!is_apple_watch_duplicate(
            "Watch/1140 CFNetwork/3860.200.71 Darwin/25.1.0"
        ));
        assert!(client("atc/1.0 watchOS/7.1").bot);
    }

    #[test]
    fn agents_name_common_podcast_apps_and_bots() {
        assert_eq!(
            app_name("AntennaPod/3.4.0 Mozilla/5.0 (Linux; Android 14)"),
            "AntennaPod"
        );
        assert_eq!(
            app_name("gPodder/3.11.1 (+http://gpodder.org/) Linux"),
            "gPodder"
        );
        assert_eq!(
            identify("Googlebot/2.1 (+http://www.google.com/bot.html)").map(|a| a.kind),
            Some(Kind::Bot)
        );
        assert_eq!(app_name("definitely-not-a-known-agent"), "unknown");
    }
}
