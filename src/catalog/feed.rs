//! Loads one feed definition, `feeds/<id>.toml`, and checks it against Apple Podcasts' rules:
//! a known category, an owner with an email, and square JPEG or PNG artwork of 1400 to 3000 pixels.

use std::path::Path;

use toml::Table;

use super::asset::{mime_for, MeasureCache};
use super::episode::{is_http_url, resources, toml_syntax_problem};
use super::fields::{strip_controls, Fields};
use super::{
    display_path, resolve_inside, valid_slug, Access, Asset, DirectoryLink, Feed, Owner, Printable,
    Problem, Selection, DIRECTORIES,
};

pub(super) struct Ctx<'a> {
    pub root: &'a Path,
    pub display_root: &'a Path,
    pub cache: &'a MeasureCache,
}

/// Apple Podcasts categories and their subcategories.
pub const APPLE_CATEGORIES: &[(&str, &[&str])] = &[
    (
        "Arts",
        &[
            "Books",
            "Design",
            "Fashion & Beauty",
            "Food",
            "Performing Arts",
            "Visual Arts",
        ],
    ),
    (
        "Business",
        &[
            "Careers",
            "Entrepreneurship",
            "Investing",
            "Management",
            "Marketing",
            "Non-Profit",
        ],
    ),
    ("Comedy", &["Comedy Interviews", "Improv", "Stand-Up"]),
    (
        "Education",
        &["Courses", "How To", "Language Learning", "Self-Improvement"],
    ),
    ("Fiction", &["Comedy Fiction", "Drama", "Science Fiction"]),
    ("Government", &[]),
    ("History", &[]),
    (
        "Health & Fitness",
        &[
            "Alternative Health",
            "Fitness",
            "Medicine",
            "Mental Health",
            "Nutrition",
            "Sexuality",
        ],
    ),
    (
        "Kids & Family",
        &[
            "Education for Kids",
            "Parenting",
            "Pets & Animals",
            "Stories for Kids",
        ],
    ),
    (
        "Leisure",
        &[
            "Animation & Manga",
            "Automotive",
            "Aviation",
            "Crafts",
            "Games",
            "Hobbies",
            "Home & Garden",
            "Video Games",
        ],
    ),
    (
        "Music",
        &["Music Commentary", "Music History", "Music Interviews"],
    ),
    (
        "News",
        &[
            "Business News",
            "Daily News",
            "Entertainment News",
            "News Commentary",
            "Politics",
            "Sports News",
            "Tech News",
        ],
    ),
    (
        "Religion & Spirituality",
        &[
            "Buddhism",
            "Christianity",
            "Hinduism",
            "Islam",
            "Judaism",
            "Religion",
            "Spirituality",
        ],
    ),
    (
        "Science",
        &[
            "Astronomy",
            "Chemistry",
            "Earth Sciences",
            "Life Sciences",
            "Mathematics",
            "Natural Sciences",
            "Nature",
            "Physics",
            "Social Sciences",
        ],
    ),
    (
        "Society & Culture",
        &[
            "Documentary",
            "Personal Journals",
            "Philosophy",
            "Places & Travel",
            "Relationships",
        ],
    ),
    (
        "Sports",
        &[
            "Baseball",
            "Basketball",
            "Cricket",
            "Fantasy Sports",
            "Football",
            "Golf",
            "Hockey",
            "Rugby",
            "Running",
            "Soccer",
            "Swimming",
            "Tennis",
            "Volleyball",
            "Wilderness",
            "Wrestling",
        ],
    ),
    ("Technology", &[]),
    ("True Crime", &[]),
    (
        "TV & Film",
        &[
            "After Shows",
            "Film History",
            "Film Interviews",
            "Film Reviews",
            "TV Reviews",
        ],
    ),
];

pub(super) fn load(ctx: &Ctx, path: &Path, problems: &mut Vec<Problem>) -> Option<Feed> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let id = name.trim_end_matches(".toml").to_owned();
    let file = display_path(ctx.display_root, &name);
    if !valid_slug(&id) {
        problems.push(Problem::new(
            &file,
            "(file name)",
            format!("{id:?} is not a valid feed id"),
            "rename the file using lowercase letters, digits and single hyphens",
        ));
        return None;
    }
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(Problem::new(
                &file,
                "(file)",
                format!("cannot be read: {e}"),
                "check its permissions and encoding (UTF-8)",
            ));
            return None;
        }
    };
    let table: Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            problems.push(toml_syntax_problem(&file, &text, &e));
            return None;
        }
    };
    let before = problems.len();
    let mut f = Fields::new(&file, &table, String::new(), problems);
    let title = f.req_text("title", "\"Defusing Difficult Encounters\"");
    let description = f.req_text("description", "\"What the show is about.\"");
    let author = f.req_text("author", "\"BJA VALOR Initiative\"");
    let language = f.req_str("language", "\"en-us\"");
    if let Some(l) = &language {
        if !valid_language(l) {
            f.problem(
                "language",
                format!("{l:?} is not a language code"),
                "use an ISO 639 code such as \"en\" or \"en-us\"",
            );
        }
    }
    let category = f.req_str("category", "\"Government\"");
    let subcategory = f.opt_str("subcategory");
    if let Some(c) = &category {
        match APPLE_CATEGORIES.iter().find(|(name, _)| name == c) {
            None => {
                let names: Vec<&str> = APPLE_CATEGORIES.iter().map(|(n, _)| *n).collect();
                f.problem(
                    "category",
                    format!("{c:?} is not an Apple Podcasts category"),
                    format!("use one of: {}", names.join(", ")),
                );
            }
            Some((_, subs)) => {
                if let Some(s) = &subcategory {
                    if !subs.contains(&s.as_str()) {
                        let fix = if subs.is_empty() {
                            format!("{c} has no subcategories: remove subcategory")
                        } else {
                            format!("use one of: {}", subs.join(", "))
                        };
                        f.problem(
                            "subcategory",
                            format!("{s:?} is not a subcategory of {c}"),
                            fix,
                        );
                    }
                }
            }
        }
    }
    let explicit = f.opt_bool("explicit").unwrap_or(false);
    let artwork_name = f.req_str("artwork", "\"cover.jpg\"");
    let link = f.opt_str("link");
    if let Some(l) = &link {
        if !is_http_url(l) {
            f.problem(
                "link",
                format!("{l:?} is not an http(s) URL"),
                "write a full URL starting with https://",
            );
        }
    }
    let access = match f.opt_str("access").as_deref() {
        None | Some("public") => Access::Public,
        Some("members") => Access::Members,
        Some(other) => {
            f.problem(
                "access",
                format!("{other:?} is not an access level"),
                "use \"public\" or \"members\"",
            );
            Access::Public
        }
    };
    let preview = f.opt_bool("preview").unwrap_or(false);
    if preview && access == Access::Public {
        f.problem(
            "preview",
            "only applies to a members feed (a public feed's pages are public anyway)",
            "remove preview, or set access = \"members\"",
        );
    }
    let selection = match f.raw("episodes") {
        None => Selection::Tagged,
        Some(toml::Value::String(s)) if s == "all" => Selection::All,
        Some(toml::Value::String(s)) if s == "tagged" => Selection::Tagged,
        Some(toml::Value::Array(_)) => {
            Selection::Listed(f.opt_str_list("episodes").unwrap_or_default())
        }
        Some(other) => {
            f.problem(
                "episodes",
                format!("{other} is not a selection"),
                "use \"all\", \"tagged\" or a list of episode slugs",
            );
            Selection::Tagged
        }
    };
    let guid = f.opt_str("guid");
    if let Some(g) = &guid {
        if uuid::Uuid::parse_str(g).is_err() {
            f.problem(
                "guid",
                format!("{g:?} is not a UUID"),
                "remove it to use the UUIDv5 of the feed URL, or write a UUID",
            );
        }
    }
    let locked = f.opt_bool("locked").unwrap_or(true);
    let copyright = f.opt_str("copyright").map(strip_controls);
    let serial = match f.opt_str("type").as_deref() {
        None | Some("episodic") => false,
        Some("serial") => true,
        Some(other) => {
            f.problem(
                "type",
                format!("{other:?} is not a show type"),
                "use \"episodic\" or \"serial\"",
            );
            false
        }
    };
    let owner = owner(&mut f);
    let resources = resources(&mut f);
    // Owned, so `problems` is free again once `f` is finished.
    let printable_tables: Vec<Table> = f.tables("printables").into_iter().cloned().collect();
    let directories = directories(&mut f, access);
    f.finish(&["owner", "directories"]);

    let artwork = artwork_name.and_then(|n| artwork(ctx, &id, &file, &n, problems));
    let printables = printables(ctx, &id, &file, &printable_tables, problems);
    if problems.len() > before {
        return None;
    }
    Some(Feed {
        id,
        title: title?,
        description: description?,
        author: author?,
        owner: owner?,
        language: language?,
        category: category?,
        subcategory,
        explicit,
        artwork: artwork?,
        link,
        access,
        preview,
        selection,
        guid,
        locked,
        copyright,
        serial,
        resources,
        printables,
        directories,
        episodes: Vec::new(),
    })
}

/// `[directories]`: the show's page in each podcast directory, by the keys of [`DIRECTORIES`].
fn directories(f: &mut Fields, access: Access) -> Vec<DirectoryLink> {
    let Some(table) = f.opt_table("directories") else {
        return Vec::new();
    };
    if access == Access::Members && !table.is_empty() {
        f.problem(
            "directories",
            "a members feed is kept out of directories (itunes:block), so it has no listings",
            "remove [directories], or link the listings from a public feed",
        );
        return Vec::new();
    }
    let keys: Vec<&str> = DIRECTORIES.iter().map(|(k, _)| *k).collect();
    let mut out = Vec::new();
    for (key, value) in table {
        let field = format!("directories.{key}");
        let Some(&(_, name)) = DIRECTORIES.iter().find(|(k, _)| k == key) else {
            f.problem(
                &field,
                "is not a directory Rollcall knows",
                format!("use one of: {}", keys.join(", ")),
            );
            continue;
        };
        match value.as_str() {
            Some(url) if url.starts_with("https://") && is_http_url(url) => {
                out.push(DirectoryLink {
                    name,
                    url: url.to_owned(),
                })
            }
            _ => f.problem(
                &field,
                format!("{value} is not an https URL"),
                format!("write the show's {name} page, like {key} = \"https://…\""),
            ),
        }
    }
    // The order of DIRECTORIES, whatever the file's order.
    out.sort_by_key(|d| DIRECTORIES.iter().position(|(_, n)| *n == d.name));
    out
}

/// A file name that goes into a URL as it is.
fn url_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with('.')
}

/// `[[printables]]`: each a file in the feeds folder (a PDF poster, say) with an optional JPEG or
/// PNG thumbnail.
fn printables(
    ctx: &Ctx,
    id: &str,
    file: &str,
    tables: &[Table],
    problems: &mut Vec<Problem>,
) -> Vec<Printable> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let mut p = Fields::new(file, t, format!("printables[{i}]."), problems);
        let title = p.req_text("title", "\"Keep Calm and De-Escalate\"");
        let caption = p.opt_str("caption").map(strip_controls);
        let file_name = p.req_str("file", "\"posters/keep-calm.pdf\"");
        let thumb_name = p.opt_str("thumbnail");
        p.finish(&[]);
        let file_asset = file_name.and_then(|n| {
            let field = format!("printables[{i}].file");
            feed_file(ctx, file, &field, &n, &format!("/files/{id}"), problems)
        });
        let thumbnail = thumb_name.and_then(|n| {
            let field = format!("printables[{i}].thumbnail");
            let asset = feed_file(ctx, file, &field, &n, &format!("/artwork/{id}"), problems)?;
            if asset.mime != "image/jpeg" && asset.mime != "image/png" {
                problems.push(Problem::new(
                    file,
                    field,
                    format!("{n:?} is not a JPEG or PNG file"),
                    "make the thumbnail a JPEG or PNG image",
                ));
                return None;
            }
            Some(asset)
        });
        if let (Some(title), Some(file)) = (title, file_asset) {
            out.push(Printable {
                title,
                caption,
                file,
                thumbnail,
            });
        }
    }
    out
}

/// A file in the feeds folder, measured and served under `prefix/<version>/<name>`.
fn feed_file(
    ctx: &Ctx,
    file: &str,
    field: &str,
    name: &str,
    prefix: &str,
    problems: &mut Vec<Problem>,
) -> Option<Asset> {
    let fix = "put the file in the feeds folder (or a folder inside it) and name it relative to it";
    let path = match resolve_inside(ctx.root, ctx.root, name) {
        Ok(p) => p,
        Err(what) => {
            problems.push(Problem::new(file, field, what, fix));
            return None;
        }
    };
    let file_name = path.file_name()?.to_string_lossy().into_owned();
    if !url_safe_name(&file_name) {
        problems.push(Problem::new(
            file,
            field,
            format!("{file_name:?} has characters a URL would have to escape"),
            "rename the file using letters, digits, dots, hyphens and underscores",
        ));
        return None;
    }
    let facts = match ctx.cache.measure(&path, false) {
        Ok(f) => f,
        Err(e) => {
            problems.push(Problem::new(file, field, e.to_string(), fix));
            return None;
        }
    };
    Some(Asset {
        url_path: format!("{prefix}/{}/{file_name}", facts.version()),
        file_name,
        mime: mime_for(&path),
        path,
        size: facts.size,
        modified: facts.modified,
        etag: facts.etag(),
    })
}

fn owner(f: &mut Fields) -> Option<Owner> {
    let Some(t) = f.opt_table("owner") else {
        f.problem(
            "owner",
            "is missing",
            "add an [owner] table with name and email (Apple requires it)",
        );
        return None;
    };
    let mut o = Fields::new(f.file, t, "owner.".into(), f.problems);
    let name = o.req_text("name", "\"VALOR Program Office\"");
    let email = o.req_plain("email", "\"podcasts@example.org\"");
    if let Some(e) = &email {
        let ok = e.split_once('@').is_some_and(|(a, b)| {
            !a.is_empty() && b.contains('.') && !e.contains(char::is_whitespace)
        });
        if !ok {
            o.problem(
                "email",
                format!("{e:?} is not an email address"),
                "write it like \"podcasts@example.org\"",
            );
        }
    }
    o.finish(&[]);
    Some(Owner {
        name: name?,
        email: email?,
    })
}

fn valid_language(l: &str) -> bool {
    let mut parts = l.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn artwork(
    ctx: &Ctx,
    id: &str,
    file: &str,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<Asset> {
    let fix = "use a square JPEG or PNG of 1400 to 3000 pixels in the feeds folder";
    let path = match resolve_inside(ctx.root, ctx.root, name) {
        Ok(p) => p,
        Err(what) => {
            problems.push(Problem::new(file, "artwork", what, fix));
            return None;
        }
    };
    let mime = mime_for(&path);
    if mime != "image/jpeg" && mime != "image/png" {
        problems.push(Problem::new(
            file,
            "artwork",
            format!("{name:?} is not a JPEG or PNG file"),
            fix,
        ));
        return None;
    }
    match imagesize::size(&path) {
        Ok(size) if size.width == size.height && (1400..=3000).contains(&size.width) => {}
        Ok(size) => {
            problems.push(Problem::new(
                file,
                "artwork",
                format!("{name:?} is {}x{} pixels", size.width, size.height),
                fix,
            ));
            return None;
        }
        Err(e) => {
            problems.push(Problem::new(
                file,
                "artwork",
                format!("{name:?} cannot be read as an image ({e})"),
                fix,
            ));
            return None;
        }
    }
    let facts = match ctx.cache.measure(&path, false) {
        Ok(f) => f,
        Err(e) => {
            problems.push(Problem::new(file, "artwork", e.to_string(), fix));
            return None;
        }
    };
    let file_name = path.file_name()?.to_string_lossy().into_owned();
    Some(Asset {
        url_path: format!("/artwork/{id}/{}/{file_name}", facts.version()),
        file_name,
        mime,
        path,
        size: facts.size,
        modified: facts.modified,
        etag: facts.etag(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_codes() {
        assert!(valid_language("en"));
        assert!(valid_language("en-us"));
        assert!(valid_language("en-US"));
        assert!(!valid_language("english"));
        assert!(!valid_language("e"));
        assert!(!valid_language("en_us"));
    }
}
