//! Naming the client from its `User-Agent`, with the OPAWG user-agents v2 list (vendored in
//! `data/opawg-user-agents-v2/`, MIT, with its source and licence).
//!
//! Upstream's rule: try bots, then apps, then libraries, then browsers, and take the first entry
//! that matches, in file order. Each file's patterns are compiled once into a `RegexSet`, so a
//! lookup is one pass per file; the lowest matching index is the first entry in file order.

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
    #[serde(default)]
    #[cfg_attr(not(test), allow(dead_code))]
    examples: Vec<String>,
}

struct List {
    kind: Kind,
    set: RegexSet,
    names: Vec<&'static str>,
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

/// The client `user_agent` names, if the list knows it.
pub fn identify(user_agent: &str) -> Option<Agent> {
    LISTS.iter().find_map(|l| {
        let first = l.set.matches(user_agent).into_iter().next()?;
        Some(Agent {
            name: l.names[first],
            kind: l.kind,
        })
    })
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
        // Upstream promises each example matches its own entry; a few may be shadowed by an
        // earlier entry in the prescribed order. Keep that number visible and small.
        assert!(
            wrong.len() <= 20,
            "{} examples name another entry:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
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
