//! Route patterns: which paths a route rule covers.
//!
//! A pattern is a path of segments: a literal (`articles`), a parameter that matches any one segment
//! (`:id` or `[id]`), `*` in the middle (any one segment) or `*` at the end (one or more segments).
//! Paths are compared after the same normalisation on both sides: percent-decoded, case-folded,
//! empty segments dropped, trailing dots and spaces of a segment dropped. That normalisation is
//! about money: if `/Articles/x`, `/%61rticles/x`, `/articles//x`, `/articleſ/x` or `/articles./x`
//! reached an origin that reads them as `/articles/x` while the paywall did not see a priced path,
//! the paywall could be walked around.

/// A compiled route pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: String,
    segments: Vec<Segment>,
    tail: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
}

impl PathPattern {
    /// Compiles a pattern, or says what is wrong with it.
    pub fn parse(source: &str) -> Result<PathPattern, String> {
        if !source.starts_with('/') {
            return Err(format!("{source:?} must start with '/'"));
        }
        if source.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{source:?} must not contain spaces"));
        }
        let parts: Vec<&str> = source.split('/').filter(|s| !s.is_empty()).collect();
        let mut segments = Vec::with_capacity(parts.len());
        let mut tail = false;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let seg = if *part == "*" {
                if last {
                    tail = true;
                    continue;
                }
                Segment::Any
            } else if part.contains('*') {
                return Err(format!(
                    "{source:?}: '*' must be a whole segment (/a/*/b or /a/*)"
                ));
            } else {
                // Every segment, a parameter's name included, must be one segment as origins read
                // it: a literal read as two could never match, and a pattern must cover its own text.
                // One whose decoded text holds a separator is refused too, even where a `..` in it
                // leaves one segment (`..%2Fb`, `..\b`): read within the whole path, the `..`
                // would climb out of the segment before it.
                let read = normalise_path(part);
                let separated = normalise_segment(part).contains(['/', '\\']);
                match read.as_slice() {
                    _ if separated => {
                        return Err(format!(
                            "{source:?}: {part:?} holds a separator once decoded; write the path as origins read it"
                        ))
                    }
                    [_] if part.starts_with(':')
                        || (part.starts_with('[') && part.ends_with(']')) =>
                    {
                        if part.contains('.') {
                            return Err(format!(
                                "{source:?}: a parameter is a whole segment: write {part:?} without the '.'"
                            ));
                        }
                        Segment::Any
                    }
                    [one] => Segment::Literal(one.clone()),
                    _ => {
                        return Err(format!(
                            "{source:?}: {part:?} is read as {read:?}; write the path as origins read it"
                        ))
                    }
                }
            };
            segments.push(seg);
        }
        Ok(PathPattern {
            source: source.to_string(),
            segments,
            tail,
        })
    }

    /// Whether every segment is a literal: the pattern covers its own path alone.
    pub fn is_literal(&self) -> bool {
        !self.tail
            && self
                .segments
                .iter()
                .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The pattern as the bazaar extension's `routeTemplate` writes it, for facilitators to
    /// catalogue the route once rather than each path paid for: a parameter as `:name`, each `*`
    /// as `:var1`, `:var2`… in order (nine at most), as the official server extension names them
    /// (`/users/[id]/*` is `/users/:id/:var1`). `None` for a pattern without any (the path is
    /// the resource), one of wildcards alone (`/*`, which the official extension leaves out too),
    /// or one the template's grammar (`/` then letters, digits and `_/:.-~`) cannot carry as it is.
    pub fn route_template(&self) -> Option<String> {
        let mut template = String::new();
        let (mut wildcards, mut params, mut literals) = (0, false, false);
        for part in self.source.split('/').filter(|s| !s.is_empty()) {
            template.push('/');
            let name = match part.strip_prefix(':') {
                Some(name) => name,
                None if part.starts_with('[') && part.ends_with(']') => &part[1..part.len() - 1],
                None if part == "*" && wildcards < 9 => {
                    wildcards += 1;
                    template.push_str(":var");
                    template.push(char::from(b'0' + wildcards));
                    continue;
                }
                None => {
                    let plain = |b: u8| b.is_ascii_alphanumeric() || b"_.-~".contains(&b);
                    if !part.bytes().all(plain) || part.contains("..") {
                        return None;
                    }
                    template.push_str(part);
                    literals = true;
                    continue;
                }
            };
            let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            if name.is_empty() || !name.bytes().all(word) || name.as_bytes()[0].is_ascii_digit() {
                return None;
            }
            params = true;
            template.push(':');
            template.push_str(name);
        }
        (params || (wildcards > 0 && literals)).then_some(template)
    }

    /// Whether the pattern names a script (`/index.php/2024/*`): its rule prices as written the
    /// paths a front controller serves.
    pub fn names_script(&self) -> bool {
        self.source.split('/').any(|s| script(s).is_some())
    }

    /// Whether the (raw, undecoded) request path is covered.
    pub fn matches(&self, path: &str) -> bool {
        self.matches_read(&normalise_path(path))
    }

    /// [`PathPattern::matches`], or the path with a format suffix on its last segment
    /// (`/v1/weather.json`, `/v1/weather.json.gz`, `/v1/data.v2.json` for `/v1/data.v2`) matches
    /// without it: Rails' `(.:format)` and Spring's suffix matching serve it as `/v1/weather`. And
    /// a pattern ending in a page's `.html` (or `.htm`) also matches the page without it, and
    /// `index.html` its folder, as static hosts serve them (Cloudflare Pages, nginx's `try_files
    /// $uri.html`); the other way round, a folder's `index.html`, `index.htm` or `index.php`
    /// matches where the folder does. What a priced rule and a session's scope cover; not a free
    /// rule, which would open what a priced catch-all sells under such a name.
    pub fn matches_formatted(&self, path: &str) -> bool {
        let mut read = normalise_path(path);
        if self.matches_read(&read) {
            return true;
        }
        if let (false, Some(Segment::Literal(page))) = (self.tail, self.segments.last()) {
            if let Some((stem, "html" | "htm")) = page.rsplit_once('.') {
                // The page's name without `.html` has no suffix left to try.
                if let Some(last) = read.last_mut().filter(|last| *last == stem) {
                    *last = page.clone();
                    return self.matches_read(&read);
                }
                if stem == "index" {
                    read.push(page.clone());
                    if self.matches_read(&read) {
                        return true;
                    }
                    read.pop();
                }
            }
        }
        let Some(last) = read.pop() else {
            return false;
        };
        // A folder's index page is the folder on a static host: `/reports/annual/index.html` is
        // what `/reports/annual` serves.
        if matches!(last.as_str(), "index.html" | "index.htm" | "index.php")
            && self.matches_read(&read)
        {
            return true;
        }
        // Each name before a dot compared where it stands, not copied: a name of thousands of dots
        // costs as many comparisons, not as many copies of itself.
        last.match_indices('.').any(|(dot, _)| {
            let base = last[..dot].trim_end_matches(' ');
            !base.is_empty() && self.matches_parts(&read, Some(base))
        })
    }

    fn matches_read(&self, normalised: &[String]) -> bool {
        self.matches_parts(normalised, None)
    }

    /// Whether the segments `normalised`, then `last` if any, match.
    fn matches_parts(&self, normalised: &[String], last: Option<&str>) -> bool {
        let count = normalised.len() + usize::from(last.is_some());
        if count < self.segments.len() {
            return false;
        }
        for (i, seg) in self.segments.iter().enumerate() {
            if let Segment::Literal(lit) = seg {
                let part = normalised
                    .get(i)
                    .map_or(last.unwrap_or_default(), String::as_str);
                if part != lit {
                    return false;
                }
            }
        }
        (count > self.segments.len()) == self.tail
    }
}

/// Whether the (raw) request path hides a `.` or `..` segment: one that only some readers see,
/// encoded (`%2E%2E`), behind matrix parameters (`..;x`) or beside an encoded separator (`..%2F`,
/// `..%5C`). The runtime resolves plain dot segments (and encoded ones) before the Worker sees the
/// URL; what is left is read as a climb by some origins and as a name by others, so no reading of
/// it can be priced safely. Such a path is refused before anything else (see
/// [`crate::paywall::decide`]).
///
/// So is a segment of dots and spaces other than `.` and `..` (`...`, `..%20`, `.%20`): an origin
/// that drops trailing dots and spaces from a name, as Windows does, reads it as one of those.
pub fn hides_dot_segment(path: &str) -> bool {
    // Only a segment with an escape or a `;`, or one of dots alone, can hide one: the others are
    // read as they are (nothing is decoded for them, so the check costs next to nothing on
    // ordinary paths).
    path.split('/').any(|raw| {
        !matches!(raw, "." | "..")
            && (raw.contains(['%', ';']) || raw.bytes().all(|b| b == b'.'))
            && normalise_segment(raw)
                .split(['/', '\\'])
                .any(|piece| dots(piece.split(';').next().unwrap_or_default()))
    })
}

/// Whether the (raw) request path holds a `%uNNNN` escape. It is no URL escape, and every reader
/// but one leaves it as written; IIS decodes it (a UTF-16 unit), so that `/%u0061rticles/x` is
/// `/articles/x` there and `/free/%u002e%u002e/x` climbs out of `/free`. No browser writes one, so
/// such a path is refused before anything else ([`crate::paywall::disguised_path`]).
pub fn iis_escape(path: &str) -> bool {
    path.contains('%')
        && path.as_bytes().windows(6).any(|w| {
            w[0] == b'%' && (w[1] | 0x20) == b'u' && w[2..].iter().all(u8::is_ascii_hexdigit)
        })
}

/// The path as an origin that percent-decodes twice reads it, written for one decoding more:
/// every escaped `%` (`%25` before two hex digits) unescaped, so that `%252e` reads `%2e`, which
/// the matcher's one decoding reads `.`. `None` when the path has no such escape, as nearly every
/// path has not. A path whose two readings fall under different routes, or whose second reading
/// hides a dot segment, is refused before it is matched ([`crate::paywall::disguised_path`]).
pub fn decoded_twice(path: &str) -> Option<String> {
    if !path.contains("%25") {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    let mut changed = false;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        if let [a, b, c, d, ..] = rest.as_bytes() {
            if (*a, *b) == (b'2', b'5') && c.is_ascii_hexdigit() && d.is_ascii_hexdigit() {
                rest = &rest[2..];
                changed = true;
            }
        }
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// The path as an origin that keeps an encoded separator inside its segment reads it (Express,
/// and most routers that match the raw path: `/quote/BTC%2FUSD` is one parameter there), written
/// so that the matcher's one decoding keeps it too: each `%2F` and `%5C` escaped once more.
/// `None` when the path has none, as nearly every path has not. The matcher itself splits on them
/// (as an origin that decodes before routing does); a path whose two readings fall under
/// different routes is refused before it is matched ([`crate::paywall::ambiguous_path`]).
pub fn separators_kept(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let escaped_separator = |i: usize| {
        matches!(
            bytes.get(i..i + 3),
            Some([b'%', b'2', b'f' | b'F']) | Some([b'%', b'5', b'c' | b'C'])
        )
    };
    if !(0..bytes.len()).any(escaped_separator) {
        return None;
    }
    let mut out = String::with_capacity(path.len() + 8);
    let mut last = 0;
    for i in 0..bytes.len() {
        if escaped_separator(i) {
            out.push_str(&path[last..=i]);
            out.push_str("25");
            last = i + 1;
        }
    }
    out.push_str(&path[last..]);
    Some(out)
}

/// The paths a server running scripts reads in a path that goes on past a script's name (PHP's,
/// ASP.NET's, a CGI's): to a front controller, which drops its own name (Laravel, Symfony,
/// WordPress), `/index.php/articles/x` is `/articles/x`; to a server that runs the script with the
/// rest as its path info, `/download.php/x` is `/download.php` (not for an `index.*`, which is a
/// front controller: it routes by what follows). Empty for nearly every path, which names no
/// script before its end; the first [`SCRIPTS_READ`] scripts of a path are read, so that a path
/// of many costs no more than one of a few. A path one of whose readings another route prices is
/// refused before it is matched ([`crate::paywall::ambiguous_path`]).
pub fn script_readings(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !path.starts_with('/') || !path.contains(['.', '%']) {
        return out;
    }
    // Where the slashes that end the path begin: past it, no segment is left to read.
    let named = path.trim_end_matches('/').len();
    // Each segment's start and end in the path (at a '/' each).
    let (mut start, mut read) = (0, 0);
    while let Some(end) = path[start + 1..].find('/').map(|i| start + 1 + i) {
        let rest = &path[end..];
        if end >= named || read == SCRIPTS_READ {
            break;
        }
        if let Some(front) = script(&path[start + 1..end]) {
            read += 1;
            out.push([&path[..start], rest].concat());
            if !front {
                out.push(path[..end].into());
            }
        }
        start = end;
    }
    out
}

/// How many scripts of one path [`script_readings`] reads.
const SCRIPTS_READ: usize = 2;

/// Whether a (raw) segment names a script (a PHP, ASP.NET or CGI file), and if so whether it is a
/// front controller's `index.*`.
fn script(raw: &str) -> Option<bool> {
    if !raw.contains(['.', '%']) {
        return None;
    }
    let seg = normalise_segment(raw);
    let seg = seg.split(';').next().unwrap_or_default();
    let (stem, ext) = seg.trim_end_matches(['.', ' ']).rsplit_once('.')?;
    let known = matches!(ext, "php" | "phtml" | "aspx" | "asmx" | "ashx" | "cgi");
    (known && !stem.is_empty()).then_some(stem == "index")
}

/// `.`, `..`, or a name an origin may read as one of them: dots and spaces alone.
fn dots(piece: &str) -> bool {
    piece.contains('.') && piece.bytes().all(|b| b == b'.' || b == b' ')
}

/// The segments of a request path as an origin might read them: percent-decoded once (so `%2F`
/// and `%5C` separate and `%2E%2E` climbs), matrix parameters (`;x=1`) dropped, trailing dots and
/// spaces dropped (`articles.` is `articles` on Windows), `.` and `..` resolved, empty segments
/// dropped, case-folded. Reading more into a path than an origin would only ever makes the paywall
/// charge more, never less, except for a climb: a `..` that an origin may read as a name. Paths
/// that hide one are refused ([`hides_dot_segment`]) before they are matched.
fn normalise_path(path: &str) -> Vec<String> {
    let decoded = normalise_segment(path);
    let mut out: Vec<String> = Vec::new();
    // A backslash separates too: the runtime turns a raw one into `/`, but leaves `%5C`, which
    // Windows servers, IIS and some frameworks read as one.
    for seg in decoded.split(['/', '\\']) {
        let seg = seg.split(';').next().unwrap_or_default();
        let seg = match seg {
            "." | ".." => seg,
            _ => seg.trim_end_matches(['.', ' ']),
        };
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_string()),
        }
    }
    out
}

/// Percent-decodes and case-folds a segment (or a path). Invalid escapes stay as written.
fn normalise_segment(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(h), Some(l)) = (hi, lo) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    let text = String::from_utf8_lossy(&out);
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        // A final sigma is `ς` or `σ` by what follows it, which a format suffix changes
        // (`καιρός` but `καιρόσ.json`): read as one letter.
        unicode_fold(&text)
            .chars()
            .map(|c| if c == 'ς' { 'σ' } else { c })
            .collect()
    }
}

/// Unicode's default case mappings, lower, upper, then lower: what a case-insensitive origin may
/// compare. Lowercase alone is not enough, since some letters are another letter's case in one
/// direction only: `ſ` and `ı` uppercase to `S` and `I`, `ß` and `ﬁ` to `SS` and `FI` (and `ẞ`
/// lowercases to `ß`). In the Worker it is the runtime's own `toUpperCase` and `toLowerCase`, the
/// same mappings as Rust's: Rust's case tables would add 25 KB to the bundle for the rare
/// non-ASCII path.
#[cfg(target_arch = "wasm32")]
fn unicode_fold(text: &str) -> String {
    js_sys::JsString::from(text)
        .to_lower_case()
        .to_upper_case()
        .to_lower_case()
        .into()
}

#[cfg(not(target_arch = "wasm32"))]
fn unicode_fold(text: &str) -> String {
    text.to_lowercase().to_uppercase().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_templates_name_parameters_and_wildcards_as_the_official_extension_does() {
        let template = |p: &str| PathPattern::parse(p).unwrap().route_template();
        assert_eq!(template("/articles/*").as_deref(), Some("/articles/:var1"));
        assert_eq!(
            template("/users/[id]/posts/:post/*/x/*").as_deref(),
            Some("/users/:id/posts/:post/:var1/x/:var2")
        );
        assert_eq!(template("/:slug").as_deref(), Some("/:slug"));
        assert_eq!(template("/*/:id").as_deref(), Some("/:var1/:id"));
        assert_eq!(
            template("/v1.2/~me/a_b-c/*").as_deref(),
            Some("/v1.2/~me/a_b-c/:var1")
        );
        // The path itself is the resource.
        assert_eq!(template("/api/weather"), None);
        assert_eq!(template("/"), None);
        // Wildcards alone, as the official extension leaves them.
        assert_eq!(template("/*"), None);
        assert_eq!(template("/*/*"), None);
        // What the template's grammar cannot carry as written.
        for p in [
            "/caf%C3%A9/*",
            "/café/*",
            "/a+b/*",
            "/[1st]/x",
            "/:user-id",
            "/a..b/*",
        ] {
            assert_eq!(template(p), None, "{p}");
        }
    }

    fn m(p: &str, path: &str) -> bool {
        PathPattern::parse(p).unwrap().matches(path)
    }

    #[test]
    fn literals_wildcards_params() {
        assert!(m("/api/weather", "/api/weather"));
        assert!(m("/api/weather", "/api/weather/"));
        assert!(!m("/api/weather", "/api/weather/x"));
        assert!(m("/articles/*", "/articles/a"));
        assert!(m("/articles/*", "/articles/a/b"));
        assert!(!m("/articles/*", "/articles"));
        assert!(!m("/articles/*", "/article/a"));
        assert!(m("/users/:id/posts", "/users/7/posts"));
        assert!(m("/users/[id]/posts", "/users/7/posts"));
        assert!(!m("/users/:id/posts", "/users/7/8/posts"));
        assert!(m("/a/*/c", "/a/b/c"));
        assert!(m("/*", "/anything/at/all"));
        assert!(m("/", "/"));
        assert!(!m("/", "/x"));
    }

    #[test]
    fn a_format_suffix_on_the_last_segment_is_read_as_rails_and_spring_read_it() {
        let f = |p: &str, path: &str| PathPattern::parse(p).unwrap().matches_formatted(path);
        for path in [
            "/v1/weather",
            "/v1/weather.json",
            "/v1/Weather.XML/",
            "/v1/weather.json.gz",
            "/v1/weather%2Ejson",
            "/v1/weather .json",
            "/v1/weather.json;x=1",
        ] {
            assert!(f("/v1/weather", path), "{path}");
            assert!(
                !m("/v1/weather", path) || !path.contains(['.', '%']),
                "{path}"
            );
        }
        // Only the last segment's suffix, and only after a name: not a dotfile, nor another name.
        for path in [
            "/v1.json/weather",
            "/v1/weather.json/x",
            "/v1/.json",
            "/v1/weathers.json",
            "/v1/weather-json",
            "/v1",
        ] {
            assert!(!f("/v1/weather", path), "{path}");
        }
        assert!(f("/users/:id", "/users/7.json"));
        assert!(f("/articles/*", "/articles/a.html"));
        assert!(!f("/articles/*", "/articles.rss"));
        // A folder's index page is the folder.
        assert!(f("/", "/index.html") && !m("/", "/index.html"));
        assert!(f("/reports/annual", "/reports/annual/index.html"));
        assert!(f("/posts/:slug", "/Posts/my-post/INDEX.HTM"));
        assert!(f("/app", "/app/index.php"));
        assert!(!f("/reports/annual", "/reports/annual/other.html"));
        assert!(!f("/reports/annual", "/reports/index.html"));
        assert!(!f("/reports/annual", "/reports/annual/index.html/x"));
        // A literal with a dot of its own takes a suffix after it.
        assert!(f("/api/data.v2", "/api/data.v2.json"));
        assert!(!f("/api/data.v2", "/api/data.json"));
        // A final sigma reads the same with a suffix after it (`ς` becomes `σ` before a `.`).
        assert!(f("/άρθρα/καιρός", "/άρθρα/καιρός.json"));
        assert!(f(
            "/άρθρα/καιρός",
            "/%CE%AC%CF%81%CE%B8%CF%81%CE%B1/%CE%BA%CE%B1%CE%B9%CF%81%CF%8C%CF%82.json"
        ));
        // A page written with `.html` as static hosts serve it: without it, and an index as its
        // folder.
        assert!(f("/reports/annual.html", "/reports/annual"));
        assert!(f("/reports/annual.htm", "/Reports/Annual/"));
        assert!(f("/reports/index.html", "/reports/"));
        assert!(f("/index.html", "/"));
        assert!(!f("/reports/annual.pdf", "/reports/annual"));
        assert!(!f("/reports/annual.html", "/reports"));
        assert!(!f("/reports/annual.html", "/reports/annual/x"));
        assert!(!m("/reports/annual.html", "/reports/annual"));
    }

    #[test]
    fn paths_past_a_script_are_read_as_servers_running_scripts_read_them() {
        let r = |path: &str| script_readings(path);
        // A front controller (`index.*`) is read one way, any other script both.
        assert_eq!(r("/index.php/articles/x"), ["/articles/x"]);
        assert_eq!(r("/blog/Index.PHP./2024/post/"), ["/blog/2024/post/"]);
        assert_eq!(r("/index%2Ephp/x"), ["/x"]);
        assert_eq!(r("/app.php/articles/x"), ["/articles/x", "/app.php"]);
        assert_eq!(r("/app/default.aspx/x"), ["/app/x", "/app/default.aspx"]);
        assert_eq!(
            r("/cgi-bin/run.cgi;v=1/x"),
            ["/cgi-bin/x", "/cgi-bin/run.cgi;v=1"]
        );
        // Two scripts at most are read, however many the path names.
        let many = "/a.php".repeat(2_000) + "/x";
        assert_eq!(r(&many).len(), 4);
        // Nothing past the script, no script, or a name that only ends like one.
        for path in [
            "/index.php",
            "/index.php/",
            "/index.php//",
            "/articles/x",
            "/v1/weather.json/x",
            "/.php/x",
            "/phpinfo/x",
            "/a.phpx/y",
            "/v1/domains/allegro.pl/dns",
            "é.php/x",
            "",
            "/",
        ] {
            assert!(r(path).is_empty(), "{path}");
        }
    }

    #[test]
    fn evasions_are_still_matched() {
        assert!(m("/articles/*", "/Articles/x"));
        assert!(m("/articles/*", "/%61rticles/x"));
        assert!(m("/articles/*", "//articles//x"));
        assert!(m("/articles/*", "/%41RTICLES/x"));
        // Non-ASCII letters are compared in Unicode lowercase (the Worker asks the runtime).
        assert!(m("/études/*", "/ÉTUDES/x"));
        assert!(m("/études/*", "/%C3%89tudes/x"));
        assert!(m("/ÉTUDES/*", "/études/x"));
        // Letters that are another letter's case in one direction only: an origin that compares
        // in upper case reads them as ASCII.
        assert!(m("/articles/*", "/articleſ/x"));
        assert!(m("/articles/*", "/%C4%B1/../art%C4%B1cles/x"));
        assert!(m("/classes/*", "/claßes/x"));
        assert!(m("/classes/*", "/CLAẞES/x"));
        assert!(m("/files/*", "/ﬁles/x"));
        assert!(m("/kelvin/*", "/\u{212A}elvin/x"));
    }

    #[test]
    fn trailing_dots_and_spaces_are_dropped_as_windows_does() {
        assert!(m("/articles/*", "/articles./x"));
        assert!(m("/articles/*", "/articles%20/x"));
        assert!(m("/articles/*", "/articles.%20./x"));
        assert!(m("/api/weather", "/api/weather."));
        assert!(m("/v1./*", "/v1/x"));
        assert!(!m("/articles/*", "/articles.x/y"));
        // Dots and spaces alone could be read as `.` or `..`: refused before matching.
        for hidden in [
            "/free/.../articles/x",
            "/free/..%20/articles/x",
            "/free/.%20/x",
            "/free/%20../x",
            "/articles/x/..%20.",
        ] {
            assert!(hides_dot_segment(hidden), "{hidden}");
        }
        for plain in [
            "/articles/x",
            "/a.b/c",
            "/v1./x",
            "//x",
            "/x/",
            "/%20/x",
            "/articles/.hidden",
        ] {
            assert!(!hides_dot_segment(plain), "{plain}");
        }
    }

    #[test]
    fn a_path_decoded_twice_reads_its_escaped_escapes() {
        assert_eq!(decoded_twice("/articles/hello"), None);
        assert_eq!(
            decoded_twice("/50%25-off/x"),
            None,
            "a literal % before no hex"
        );
        assert_eq!(decoded_twice("/a%2"), None);
        assert_eq!(decoded_twice("/a%25"), None);
        assert_eq!(decoded_twice("/a%252"), None);
        assert_eq!(
            decoded_twice("/public/%252e%252E/premium").as_deref(),
            Some("/public/%2e%2E/premium")
        );
        assert_eq!(
            decoded_twice("/%2561rticles/x").as_deref(),
            Some("/%61rticles/x")
        );
        assert_eq!(
            decoded_twice("/%25%2541/%25zz").as_deref(),
            Some("/%25%41/%25zz")
        );
        assert_eq!(decoded_twice("/é%2541").as_deref(), Some("/é%41"));
        // Read twice, the climb is there; read once, it is a name.
        let twice = decoded_twice("/public/%252e%252e/premium").unwrap();
        assert!(!hides_dot_segment("/public/%252e%252e/premium"));
        assert!(hides_dot_segment(&twice));
        assert!(m("/articles/*", &decoded_twice("/%2561rticles/x").unwrap()));
        assert!(!m("/articles/*", "/%2561rticles/x"));
    }

    #[test]
    fn paths_an_origin_would_decode_are_matched_as_it_would() {
        assert!(m("/articles/*", "/articles%2Fhello"));
        // An encoded backslash is a separator to Windows servers and IIS.
        assert!(m("/articles/*", "/articles%5Chello"));
        assert!(m("/articles/*", "/ARTICLES%5chello"));
        assert!(m("/api/weather", "/api%5Cweather"));
        assert!(m("/api/weather", "/api%5C%5Cweather%5C"));
        assert!(m("/articles/*", "/free/%2E%2E%2Farticles/hello"));
        assert!(m("/articles/*", "/free/../articles/hello"));
        assert!(m("/articles/*", "/articles;x=1/hello"));
        assert!(m("/articles/*", "/./articles/hello"));
        assert!(!m("/articles/*", "/articles/../free/x"));
    }

    #[test]
    fn an_encoded_separator_kept_whole_is_the_other_reading() {
        assert_eq!(separators_kept("/articles/hello"), None);
        assert_eq!(separators_kept("/a%2520b"), None);
        let kept = separators_kept("/quote/BTC%2FUSD").unwrap();
        assert_eq!(kept, "/quote/BTC%252FUSD");
        // Split, a parameter sees two segments; kept whole, one.
        assert!(!m("/quote/:symbol", "/quote/BTC%2FUSD"));
        assert!(m("/quote/:symbol", &kept));
        assert!(m("/a/*/c", &separators_kept("/a/x%5cy/c").unwrap()));
        assert!(!m("/a/*/c", "/a/x%5cy/c"));
        assert_eq!(
            separators_kept("/%2f%5C%2F%5c").as_deref(),
            Some("/%252f%255C%252F%255c")
        );
        // A truncated escape at the end is left as written.
        assert_eq!(separators_kept("/a%2"), None);
        assert_eq!(separators_kept("/a%2Fb%").as_deref(), Some("/a%252Fb%"));
    }

    #[test]
    fn a_segment_hiding_a_separator_is_refused() {
        // Each would read as one segment alone, but as a climb out of the segment before it
        // within the whole path, so the pattern could not cover its own text.
        for p in ["/x/..%2Fb", "/x/..\\b", "/x/..%5cb", "/a\\b"] {
            assert!(PathPattern::parse(p).is_err(), "{p}");
        }
        assert!(PathPattern::parse("/x/a%20b").is_ok());
    }

    #[test]
    fn a_parameter_with_a_dot_is_refused() {
        for p in ["/users/:id.json", "/users/[id.json]"] {
            let e = PathPattern::parse(p).unwrap_err();
            assert!(e.contains("a parameter is a whole segment"), "{p}: {e}");
        }
        assert!(PathPattern::parse("/users/:id").is_ok());
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(PathPattern::parse("articles").is_err());
        assert!(PathPattern::parse("/a*").is_err());
        assert!(PathPattern::parse("/a b").is_err());
        // Literals that could never match a normalised path are refused, not silently dead.
        for dead in ["/reports/./*", "/a/../b", "/a%2Fb"] {
            assert!(PathPattern::parse(dead).is_err(), "{dead}");
        }
        // So is a parameter whose name an origin reads as more or fewer than one segment: the
        // pattern would not cover its own text (found by the `path_pattern` fuzz target).
        for split in ["/us/:user%2FB", "/a/[x%2Fy]", "/a/:x%2F.."] {
            assert!(PathPattern::parse(split).is_err(), "{split}");
        }
        let named = PathPattern::parse("/users/:user%2Dname/posts").unwrap();
        assert!(named.matches(named.as_str()));
        assert!(named.matches("/users/7/posts"));
        // A lone or truncated escape is not a crash.
        assert!(!m("/x", "/%"));
        assert!(!m("/x", "/%4"));
    }
}
