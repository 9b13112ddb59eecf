//! Feed rendering: catalog to RSS bytes.
//!
//! The catalog's typed values become strings only here, at the feed boundary. Output is RSS 2.0 with
//! the `itunes`, `podcast` (Podcast Index), `content` and `atom` namespaces, and is deterministic: the
//! same catalog always renders the same bytes, because nothing depends on the clock, the request or
//! hash-map order.

mod encoded;
pub mod gzip;
mod inflate;
pub mod notes;
mod opml;
pub mod personal;
mod saved;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use rss::extension::itunes::{
    ITunesCategory, ITunesChannelExtension, ITunesItemExtension, ITunesOwner,
};
use rss::extension::{Extension, ExtensionMap};
use rss::{Channel, Enclosure, Guid, Image, Item};

pub use encoded::{spool_in, Encoded, KeptFile, ValidatorHeaders, FILE_AT};
pub use opml::opml;

use crate::access;
use crate::catalog::codec::Reuse;
use crate::catalog::{Catalog, Episode, Feed};
use crate::rope::Rope;

pub const NS_ITUNES: &str = "http://www.itunes.com/dtds/podcast-1.0.dtd";
pub const NS_PODCAST: &str = "https://podcastindex.org/namespace/1.0";
pub const NS_CONTENT: &str = "http://purl.org/rss/1.0/modules/content/";
pub const NS_ATOM: &str = "http://www.w3.org/2005/Atom";

/// The namespace UUID the Podcast Namespace fixes for `podcast:guid`.
const PODCAST_GUID_NAMESPACE: uuid::Uuid = uuid::uuid!("ead4c236-bf58-58c6-a2c6-a6b28d128cb6");

/// URL path of a feed's XML.
pub fn feed_path(id: &str) -> String {
    format!("/feeds/{id}.xml")
}

/// `podcast:guid` for a feed URL: UUIDv5 of the URL without its scheme and trailing slashes.
pub fn podcast_guid(feed_url: &str) -> String {
    let bare = feed_url
        .split_once("://")
        .map_or(feed_url, |(_, rest)| rest)
        .trim_end_matches('/');
    uuid::Uuid::new_v5(&PODCAST_GUID_NAMESPACE, bare.as_bytes()).to_string()
}

fn ext(name: &str, value: Option<&str>, attrs: &[(&str, &str)]) -> Extension {
    Extension {
        name: name.to_owned(),
        value: value.map(str::to_owned),
        attrs: attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        children: BTreeMap::new(),
    }
}

fn push(map: &mut ExtensionMap, prefix: &str, local: &str, e: Extension) {
    map.entry(prefix.to_owned())
        .or_default()
        .entry(local.to_owned())
        .or_default()
        .push(e);
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Renders one feed to RSS bytes.
pub fn render_feed(catalog: &Catalog, feed: &Feed) -> Vec<u8> {
    render_feed_with(catalog, feed, &ItemCache::default())
        .xml
        .to_bytes()
        .into()
}

/// Renders one feed, reusing the XML of unchanged items from `cache`.
pub fn render_feed_with(catalog: &Catalog, feed: &Feed, cache: &ItemCache) -> RenderedFeed {
    let self_url = catalog.url(&feed_path(&feed.id));
    let link = feed
        .link
        .clone()
        .unwrap_or_else(|| catalog.url(&format!("/feeds/{}", feed.id)));
    let artwork = catalog.url(&feed.artwork.url_path);
    let members = !access::is_public(feed);

    let mut extensions = ExtensionMap::default();
    push(
        &mut extensions,
        "atom",
        "link",
        ext(
            "atom:link",
            None,
            &[
                ("href", &self_url),
                ("rel", "self"),
                ("type", "application/rss+xml"),
            ],
        ),
    );
    let guid = feed.guid.clone().unwrap_or_else(|| podcast_guid(&self_url));
    push(
        &mut extensions,
        "podcast",
        "guid",
        ext("podcast:guid", Some(&guid), &[]),
    );
    push(
        &mut extensions,
        "podcast",
        "locked",
        ext(
            "podcast:locked",
            Some(yes_no(feed.locked)),
            &[("owner", &feed.owner.email)],
        ),
    );
    if members {
        push(
            &mut extensions,
            "podcast",
            "block",
            ext("podcast:block", Some("yes"), &[]),
        );
    }

    let itunes = ITunesChannelExtension {
        author: Some(feed.author.clone()),
        block: members.then(|| "Yes".to_owned()),
        categories: vec![ITunesCategory {
            text: feed.category.clone(),
            subcategory: feed.subcategory.as_ref().map(|s| {
                Box::new(ITunesCategory {
                    text: s.clone(),
                    subcategory: None,
                })
            }),
        }],
        image: Some(artwork.clone()),
        explicit: Some(feed.explicit.to_string()),
        owner: Some(ITunesOwner {
            name: Some(feed.owner.name.clone()),
            email: Some(feed.owner.email.clone()),
        }),
        summary: Some(feed.description.clone()),
        r#type: Some(if feed.serial { "serial" } else { "episodic" }.to_owned()),
        ..Default::default()
    };

    let episodes: Vec<&Arc<Episode>> = feed
        .episodes
        .iter()
        .map(|&i| &catalog.episodes[i])
        .collect();
    let mut namespaces = BTreeMap::new();
    for (prefix, uri) in [
        ("itunes", NS_ITUNES),
        ("podcast", NS_PODCAST),
        ("content", NS_CONTENT),
        ("atom", NS_ATOM),
    ] {
        namespaces.insert(prefix.to_owned(), uri.to_owned());
    }
    let channel = Channel {
        title: feed.title.clone(),
        link: link.clone(),
        description: feed.description.clone(),
        language: Some(feed.language.clone()),
        copyright: feed.copyright.clone(),
        pub_date: episodes.first().map(|e| e.published.to_rfc2822()),
        generator: Some("Rollcall".to_owned()),
        image: Some(Image {
            url: artwork,
            title: feed.title.clone(),
            link,
            ..Default::default()
        }),
        items: Vec::new(),
        extensions,
        itunes_ext: Some(itunes),
        namespaces,
        ..Default::default()
    };
    // The channel is written without items, and each item's XML comes from the cache, so a
    // reload re-renders only the episodes that changed.
    let shell = write_pretty(&channel);
    let split = shell
        .rfind("\n  </channel>")
        .expect("a rendered channel closes its channel element");
    let started = std::time::Instant::now();
    let fragments = cache.fragments(catalog, &episodes);
    let items_ms = started.elapsed().as_millis() as u64;
    let shell = Bytes::from(shell);
    let mut parts = Vec::with_capacity(fragments.len() + 2);
    let mut hasher = Sha256::new();
    parts.push(shell.slice(..split));
    hasher.update(&shell[..split]);
    for f in &fragments {
        parts.push(f.xml.clone());
        hasher.update(f.hash);
    }
    let tail = Bytes::from([&shell[split..], b"\n"].concat());
    let gzip = stitched_gzip(&parts[0], &fragments, &tail);
    tracing::debug!(
        feed = %feed.id,
        items = fragments.len(),
        items_ms,
        gzip_ms = started.elapsed().as_millis() as u64 - items_ms,
        "feed rendered"
    );
    parts.push(tail);
    hasher.update(&shell[split..]);
    let hash = hasher
        .finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect();
    RenderedFeed {
        xml: Rope::from_parts(parts),
        hash,
        gzip,
    }
}

/// The feed's gzip, stitched from its pieces (see [`gzip`]): the channel's head and tail,
/// compressed now (they are small), and every item compressed after the item before it, kept
/// with the item so that a reload compresses only new items and their successors. Items are
/// compressed on every core when many are new (the first render of a large catalog).
fn stitched_gzip(head: &Bytes, fragments: &[Arc<Fragment>], tail: &Bytes) -> Bytes {
    let head_hash: [u8; 32] = Sha256::digest(head).into();
    let item = |i: usize| {
        let (before, before_hash) = match i {
            0 => (&head[..], head_hash),
            _ => (&fragments[i - 1].xml[..], fragments[i - 1].hash),
        };
        fragments[i].deflated_after(before, before_hash)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let items: Vec<Bytes> = if fragments.len() < 1024 || threads == 1 {
        (0..fragments.len()).map(item).collect()
    } else {
        let per_thread = fragments.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..fragments.len())
                .collect::<Vec<_>>()
                .chunks(per_thread)
                .map(|chunk| {
                    let chunk = chunk.to_vec();
                    scope.spawn(move || chunk.into_iter().map(item).collect::<Vec<_>>())
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("item compressor panicked"))
                .collect()
        })
    };
    let last = fragments.last().map_or(&head[..], |f| &f.xml[..]);
    let (head_z, tail_z) = (gzip::deflate(head), gzip::deflate_after(last, tail));
    gzip::stitch(
        std::iter::once((&head[..], &head_z))
            .chain(fragments.iter().map(|f| &f.xml[..]).zip(&items))
            .chain(std::iter::once((&tail[..], &tail_z))),
    )
}

/// A rendered feed and a hash of its content, derived from the items' hashes so it costs nothing
/// extra to compute. Equal hashes mean equal bytes.
pub struct RenderedFeed {
    /// The channel's header, each item's cached fragment, and the footer, uncopied.
    pub xml: Rope,
    /// 32 hex digits.
    pub hash: String,
    /// The same bytes as gzip, ready when the feed is.
    pub gzip: Bytes,
}

fn write_pretty(channel: &Channel) -> String {
    let mut out = Vec::new();
    channel
        .pretty_write_to(&mut out, b' ', 2)
        .expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("the rss writer emits UTF-8")
}

/// One item's XML, as it appears inside a feed.
#[derive(Debug)]
pub struct Fragment {
    episode: Arc<Episode>,
    public_url: String,
    xml: Bytes,
    hash: [u8; 32],
    /// The item compressed after each predecessor it has had (by the predecessor's hash): an
    /// item usually follows the same one in every feed it is in, and rarely more than a few.
    deflated: Mutex<Vec<([u8; 32], Bytes)>>,
}

impl Fragment {
    /// This item as deflate blocks for a place right after `before` (whose hash is given).
    fn deflated_after(&self, before: &[u8], before_hash: [u8; 32]) -> Bytes {
        if let Some((_, z)) = self
            .deflated
            .lock()
            .expect("fragment lock")
            .iter()
            .find(|(h, _)| *h == before_hash)
        {
            return z.clone();
        }
        let z = gzip::deflate_after(before, &self.xml);
        let mut kept = self.deflated.lock().expect("fragment lock");
        if kept.len() >= 4 {
            kept.remove(0);
        }
        kept.push((before_hash, z.clone()));
        z
    }
}

/// Rendered items by episode slug, reused while the episode is unchanged.
#[derive(Debug, Default)]
pub struct ItemCache {
    items: Mutex<HashMap<String, Arc<Fragment>>>,
    /// Items saved by an earlier start (see [`saved`]), until the first snapshot is built.
    saved: Mutex<Option<Arc<saved::Saved>>>,
    /// Items taken from `saved`, and items rendered, since the cache was made.
    taken: AtomicUsize,
    rendered: AtomicUsize,
}

impl ItemCache {
    /// The fragments of `episodes`, in order. Missing ones are rendered on every core when there
    /// are many (the first render of a large catalog); the cache lock is never held while rendering.
    fn fragments(&self, catalog: &Catalog, episodes: &[&Arc<Episode>]) -> Vec<Arc<Fragment>> {
        const PER_THREAD_MIN: usize = 512;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8);
        let saved = self.saved.lock().expect("saved items lock").clone();
        let saved = saved.as_deref();
        if episodes.len() < 2 * PER_THREAD_MIN || threads == 1 {
            return episodes
                .iter()
                .map(|e| self.fragment(catalog, e, saved))
                .collect();
        }
        let per_thread = episodes.len().div_ceil(threads).max(PER_THREAD_MIN);
        std::thread::scope(|scope| {
            let workers: Vec<_> = episodes
                .chunks(per_thread)
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|e| self.fragment(catalog, e, saved))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("item renderer panicked"))
                .collect()
        })
    }

    fn fragment(
        &self,
        catalog: &Catalog,
        ep: &Arc<Episode>,
        saved: Option<&saved::Saved>,
    ) -> Arc<Fragment> {
        if let Some(f) = self.items.lock().expect("item cache lock").get(&ep.slug) {
            // `Arc`'s equality checks identity first, so an unchanged episode costs no comparison.
            if f.episode == *ep && f.public_url == catalog.public_url {
                return Arc::clone(f);
            }
        }
        // The key is computed only where there are saved items to find (a start's first render).
        let found = saved.and_then(|s| s.get(&saved::key(&catalog.public_url, ep)));
        let fragment = match found {
            Some(item) => {
                self.taken.fetch_add(1, Ordering::Relaxed);
                Fragment {
                    episode: Arc::clone(ep),
                    public_url: catalog.public_url.clone(),
                    xml: item.xml.clone(),
                    hash: item.hash,
                    deflated: Mutex::new(item.deflated.clone()),
                }
            }
            None => {
                self.rendered.fetch_add(1, Ordering::Relaxed);
                let xml = item_xml(catalog, ep);
                Fragment {
                    hash: Sha256::digest(&xml).into(),
                    episode: Arc::clone(ep),
                    public_url: catalog.public_url.clone(),
                    xml,
                    deflated: Mutex::default(),
                }
            }
        };
        let fragment = Arc::new(fragment);
        self.items
            .lock()
            .expect("item cache lock")
            .insert(ep.slug.clone(), Arc::clone(&fragment));
        fragment
    }

    /// A cache that takes items from the file at `path` (see [`saved`]) until
    /// [`ItemCache::finish_first_render`]. A missing file is an empty one; a damaged one is
    /// reported, and everything is rendered.
    pub fn with_saved(
        path: &std::path::Path,
    ) -> (ItemCache, Option<crate::catalog::codec::CacheFileError>) {
        let (saved, error) = match saved::Saved::load(path) {
            Ok(s) => (Some(Arc::new(s)), None),
            Err(e) => (None, Some(e)),
        };
        let cache = ItemCache {
            saved: Mutex::new(saved),
            ..Default::default()
        };
        (cache, error)
    }

    /// Lets go of the saved items, and says how many were used.
    pub fn finish_first_render(&self) -> Reuse {
        let saved = self.saved.lock().expect("saved items lock").take();
        Reuse {
            saved: saved.map_or(0, |s| s.len()),
            taken: self.taken.load(Ordering::Relaxed),
            made: self.rendered.load(Ordering::Relaxed),
        }
    }

    /// Writes every item in memory to `path`, for the next start, each under the key of what it
    /// was rendered from (computed here, off the start's path).
    pub fn save(&self, path: &std::path::Path) -> std::io::Result<usize> {
        let fragments: Vec<Arc<Fragment>> = self
            .items
            .lock()
            .expect("item cache lock")
            .values()
            .cloned()
            .collect();
        let n = fragments.len();
        saved::save(
            path,
            fragments.iter().map(|f| {
                let deflated = f.deflated.lock().expect("fragment lock").clone();
                let key = saved::key(&f.public_url, &f.episode);
                (key, &f.xml[..], f.hash, deflated)
            }),
        )?;
        Ok(n)
    }

    /// Forgets episodes that are no longer in `catalog`.
    pub fn retain_only(&self, catalog: &Catalog) {
        let slugs: std::collections::HashSet<&str> =
            catalog.episodes.iter().map(|e| e.slug.as_str()).collect();
        self.items
            .lock()
            .expect("item cache lock")
            .retain(|slug, _| slugs.contains(slug.as_str()));
    }
}

/// One item's XML, cut from a channel that holds only it, so it is indented as in the feed.
fn item_xml(catalog: &Catalog, ep: &Episode) -> Bytes {
    let channel = Channel {
        items: vec![render_item(catalog, ep)],
        ..Default::default()
    };
    let text = write_pretty(&channel);
    let start = text.find("<item>").expect("one item was written");
    let start = text[..start].rfind('\n').unwrap_or(start);
    let end = text.rfind("</item>").expect("one item was written") + "</item>".len();
    Bytes::copy_from_slice(&text.as_bytes()[start..end])
}

fn render_item(catalog: &Catalog, ep: &Episode) -> Item {
    let notes = notes::show_notes_html(ep);
    let mut extensions = ExtensionMap::default();
    for g in &ep.guests {
        let mut attrs = vec![("role", "guest"), ("group", "cast")];
        if let Some(href) = &g.link {
            attrs.push(("href", href));
        }
        if let Some(img) = &g.image {
            attrs.push(("img", img));
        }
        push(
            &mut extensions,
            "podcast",
            "person",
            ext("podcast:person", Some(&g.name), &attrs),
        );
    }
    if let Some(t) = &ep.transcript {
        let url = catalog.url(&t.url_path);
        push(
            &mut extensions,
            "podcast",
            "transcript",
            ext(
                "podcast:transcript",
                None,
                &[("url", &url), ("type", &t.mime), ("rel", "captions")],
            ),
        );
    }
    if let Some(c) = &ep.chapters {
        let url = catalog.url(&c.url_path);
        push(
            &mut extensions,
            "podcast",
            "chapters",
            ext(
                "podcast:chapters",
                None,
                &[("url", &url), ("type", "application/json+chapters")],
            ),
        );
    }
    let itunes = ITunesItemExtension {
        duration: Some(ep.duration_secs().to_string()),
        explicit: Some(ep.explicit.to_string()),
        episode_type: Some(ep.episode_type.as_str().to_owned()),
        season: ep.season.map(|s| s.to_string()),
        episode: ep.number.map(|n| n.to_string()),
        image: ep.image.as_ref().map(|i| catalog.url(&i.url_path)),
        summary: Some(ep.summary.clone()),
        ..Default::default()
    };
    Item {
        title: Some(ep.title.clone()),
        link: Some(catalog.url(&format!("/episodes/{}", ep.slug))),
        description: Some(notes.clone()),
        content: Some(notes),
        guid: Some(Guid {
            value: ep.guid.clone(),
            permalink: false,
        }),
        pub_date: Some(ep.published.to_rfc2822()),
        enclosure: Some(Enclosure {
            url: catalog.url(&ep.audio.url_path),
            length: ep.audio.size.to_string(),
            mime_type: ep.audio.mime.clone(),
        }),
        extensions,
        itunes_ext: Some(itunes),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podcast_guid_matches_the_namespace_spec_example() {
        // The Podcast Namespace's example: the Podcasting 2.0 show's feed URL and its guid.
        assert_eq!(
            podcast_guid("http://mp3s.nashownotes.com/pc20rss.xml"),
            "917393e3-1b1e-5cef-ace4-edaa54e1f810"
        );
        assert_eq!(
            podcast_guid("https://mp3s.nashownotes.com/pc20rss.xml/"),
            "917393e3-1b1e-5cef-ace4-edaa54e1f810"
        );
    }
}
