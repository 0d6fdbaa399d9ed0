//! Keyword matching on normalised paths.
//!
//! The seed compared whole `\W+`-split segments with its list, so entries with punctuation
//! (`.php`, `wp-`, `.env`, `.git`, `.bak`) could never fire. Here a keyword made only of word
//! characters matches a whole path token (so `shell` fires on `/shell.php` but not on
//! `/shells/`), and a keyword with punctuation matches anywhere in the path (so `.env` fires on
//! `/.env` and `/app/.env.bak`).

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, MatchKind};

use crate::path::{NormalizedPath, tokens};

/// Where a keyword comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeywordSource {
    /// The configured static list.
    Static,
    /// Learned from traffic by training.
    Learned,
}

impl KeywordSource {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeywordSource::Static => "static",
            KeywordSource::Learned => "learned",
        }
    }
}

/// A keyword hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordHit {
    /// The keyword that matched.
    pub keyword: String,
    /// Where it comes from.
    pub source: KeywordSource,
}

/// A compiled keyword set.
#[derive(Debug, Clone)]
pub struct KeywordSet {
    words: HashMap<String, KeywordSource, foldhash::fast::RandomState>,
    fragments: Vec<(String, KeywordSource)>,
    /// Every fragment, then every word that can match a token, in one automaton: a request's
    /// path is scanned once, and a word hit is kept only on token boundaries.
    automaton: Option<AhoCorasick>,
    /// The words in the automaton (pattern `fragments.len() + i`).
    automaton_words: Vec<(String, KeywordSource)>,
}

/// Whether `c` belongs to a token (see [`tokens`]).
fn is_token_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether the match at `start..end` is one word of a prose slug: a path segment of at least
/// four hyphen-separated words of letters (`parallelization-with-the-shell.html`). Scanners ask
/// for tool names (`/shell.php`, `/c99-shell/`), not sentences; a site's article URLs are
/// sentences, and a word in one is not a probe.
fn in_prose_slug(form: &str, start: usize, end: usize) -> bool {
    let seg_start = form[..start].rfind('/').map_or(0, |i| i + 1);
    let seg_end = form[end..].find(['/', '?']).map_or(form.len(), |i| end + i);
    let seg = &form[seg_start..seg_end];
    let stem = seg.rsplit_once('.').map_or(seg, |(s, ext)| if ext.len() <= 5 { s } else { seg });
    stem.split('-').all(|w| !w.is_empty() && w.chars().all(char::is_alphabetic)) && stem.split('-').count() >= 4
}

fn is_word(k: &str) -> bool {
    k.chars().all(|c| c.is_alphanumeric() || c == '_')
}

impl KeywordSet {
    /// Compiles static and learned keywords; `allowed` words are left out of both.
    pub fn new<'a>(
        static_keywords: impl IntoIterator<Item = &'a str>,
        learned: impl IntoIterator<Item = &'a str>,
        allowed: &[String],
    ) -> KeywordSet {
        let mut words = HashMap::default();
        let mut fragments: Vec<(String, KeywordSource)> = Vec::new();
        let tagged = static_keywords
            .into_iter()
            .map(|k| (k, KeywordSource::Static))
            .chain(learned.into_iter().map(|k| (k, KeywordSource::Learned)));
        for (k, source) in tagged {
            let k = k.trim().to_lowercase();
            if k.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(&k)) {
                continue;
            }
            if is_word(&k) {
                words.entry(k).or_insert(source);
            } else if !fragments.iter().any(|(f, _)| *f == k) {
                fragments.push((k, source));
            }
        }
        // Tokens are at least 4 characters long, so shorter words can never match.
        let mut automaton_words: Vec<(String, KeywordSource)> =
            words.iter().filter(|(w, _)| w.chars().count() >= 4).map(|(w, s)| (w.clone(), *s)).collect();
        automaton_words.sort_by(|a, b| a.0.cmp(&b.0));
        let patterns: Vec<&str> = fragments.iter().chain(&automaton_words).map(|(k, _)| k.as_str()).collect();
        let automaton = if patterns.is_empty() {
            None
        } else {
            AhoCorasick::builder().match_kind(MatchKind::Standard).build(patterns).ok()
        };
        KeywordSet { words, fragments, automaton, automaton_words }
    }

    /// The first keyword found in any form of the path: in each form, the leftmost fragment
    /// (the earlier-listed one on a tie), else the leftmost whole-token word.
    pub fn find(&self, path: &NormalizedPath) -> Option<KeywordHit> {
        let ac = self.automaton.as_ref()?;
        let nf = self.fragments.len();
        for form in path.forms() {
            let mut fragment: Option<(usize, usize)> = None; // (start, pattern)
            let mut word: Option<(usize, usize)> = None;
            for m in ac.find_overlapping_iter(form) {
                let (start, end, i) = (m.start(), m.end(), m.pattern().as_usize());
                if i < nf {
                    if fragment.is_none_or(|best| (start, i) < best) {
                        fragment = Some((start, i));
                    }
                } else if word.is_none_or(|(s, _)| start < s)
                    && !form[..start].chars().next_back().is_some_and(is_token_char)
                    && !form[end..].chars().next().is_some_and(is_token_char)
                    && !in_prose_slug(form, start, end)
                {
                    word = Some((start, i - nf));
                }
            }
            if let Some((_, i)) = fragment {
                let (k, source) = &self.fragments[i];
                return Some(KeywordHit { keyword: k.clone(), source: *source });
            }
            if let Some((_, i)) = word {
                let (k, source) = &self.automaton_words[i];
                return Some(KeywordHit { keyword: k.clone(), source: *source });
            }
        }
        None
    }

    /// Number of static keyword entries present in a path, counted once each (a model feature):
    /// one scan of the automaton per path form (training computes it for every log line).
    pub fn count_static(&self, path: &NormalizedPath) -> u32 {
        let Some(ac) = self.automaton.as_ref() else { return 0 };
        let nf = self.fragments.len();
        if nf + self.automaton_words.len() > 256 {
            return self.count_static_by_search(path);
        }
        let mut seen = [0u64; 4];
        for form in path.forms() {
            for m in ac.find_overlapping_iter(form) {
                let (start, end, i) = (m.start(), m.end(), m.pattern().as_usize());
                let counted = if i < nf {
                    self.fragments[i].1 == KeywordSource::Static
                } else {
                    // a word counts as a whole token
                    self.automaton_words[i - nf].1 == KeywordSource::Static
                        && !form[..start].chars().next_back().is_some_and(is_token_char)
                        && !form[end..].chars().next().is_some_and(is_token_char)
                };
                if counted {
                    seen[i / 64] |= 1 << (i % 64);
                }
            }
        }
        seen.iter().map(|w| w.count_ones()).sum()
    }

    /// [`KeywordSet::count_static`] by one search per keyword (very large keyword lists).
    fn count_static_by_search(&self, path: &NormalizedPath) -> u32 {
        let mut n = 0;
        for (k, s) in &self.fragments {
            if *s == KeywordSource::Static && path.forms().any(|f| f.contains(k.as_str())) {
                n += 1;
            }
        }
        for (k, s) in &self.words {
            if *s == KeywordSource::Static && path.forms().any(|f| tokens(f).any(|t| t == k)) {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_STATIC_KEYWORDS;

    fn set(learned: &[&str], allowed: &[&str]) -> KeywordSet {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        KeywordSet::new(DEFAULT_STATIC_KEYWORDS.iter().copied(), learned.iter().copied(), &allowed)
    }

    fn hit(s: &KeywordSet, p: &str) -> Option<String> {
        s.find(&NormalizedPath::new(p)).map(|h| h.keyword)
    }

    #[test]
    fn punctuation_keywords_really_fire() {
        let s = set(&[], &[]);
        assert_eq!(hit(&s, "/index.PHP"), Some(".php".into()));
        assert_eq!(hit(&s, "/.env"), Some(".env".into()));
        assert_eq!(hit(&s, "/wp-login"), Some("wp-".into()));
        assert_eq!(hit(&s, "/%252e%2565nv"), Some(".env".into()));
        assert_eq!(hit(&s, "/repo/.git/config"), Some(".git".into()));
        assert_eq!(hit(&s, "/cgi-bin/shell"), Some("shell".into()));
        assert_eq!(hit(&s, "/xmlrpc"), Some("xmlrpc".into()));
    }

    /// A site's article slug is a sentence; a keyword in it is not a probe. Tool names,
    /// short names and fragments still fire.
    #[test]
    fn words_in_prose_slugs_are_not_probes() {
        let s = set(&["backup"], &[]);
        assert_eq!(hit(&s, "/blog/productivity/parallelization-with-the-shell.html"), None);
        assert_eq!(hit(&s, "/blog/how-to-restore-a-backup/"), None);
        assert_eq!(hit(&s, "/shell.php"), Some(".php".into()));
        assert_eq!(hit(&s, "/cgi-bin/shell"), Some("shell".into()));
        assert_eq!(hit(&s, "/c99-shell-v2/"), Some("shell".into()));
        assert_eq!(hit(&s, "/site-backup-2024/"), Some("backup".into()), "digits: a file name, not prose");
        assert_eq!(hit(&s, "/my-nice-shell-here/.env"), Some(".env".into()), "fragments still fire");
    }

    #[test]
    fn words_match_whole_tokens_only() {
        let s = set(&["backup"], &[]);
        assert_eq!(hit(&s, "/shells/beach"), None);
        assert_eq!(hit(&s, "/blog/hello-world/"), None);
        assert_eq!(hit(&s, "/old/backup/db"), Some("backup".into()));
        assert_eq!(s.find(&NormalizedPath::new("/backup")).unwrap().source, KeywordSource::Learned);
    }

    #[test]
    fn allowed_words_are_never_keywords() {
        let s = set(&["profile"], &["profile", "shell"]);
        assert_eq!(hit(&s, "/en/profile/"), None);
        assert_eq!(hit(&s, "/shell"), None);
    }

    /// The token-by-token definition `find` must agree with.
    fn reference(s: &KeywordSet, p: &NormalizedPath) -> Option<String> {
        for form in p.forms() {
            let frag =
                s.fragments.iter().filter_map(|(k, _)| form.find(k.as_str()).map(|at| (at, k))).min_by_key(|x| x.0);
            if let Some((_, k)) = frag {
                return Some(k.clone());
            }
            if let Some(t) = tokens(form).find(|t| s.words.contains_key(*t)) {
                return Some(t.to_string());
            }
        }
        None
    }

    proptest::proptest! {
        #[test]
        fn find_agrees_with_tokens(p in "(/(shell|backup|admin|wp-|cmd|\\.php|ö|x_|[a-z0-9._-]{0,6})){0,5}") {
            let s = set(&["backup", "cmd", "admin"], &[]);
            let n = NormalizedPath::new(&p);
            proptest::prop_assert_eq!(s.find(&n).map(|h| h.keyword), reference(&s, &n));
        }
    }

    #[test]
    fn counts_static_hits() {
        let s = set(&[], &[]);
        assert_eq!(s.count_static(&NormalizedPath::new("/wp-admin/shell.php")), 3);
        assert_eq!(s.count_static(&NormalizedPath::new("/ok")), 0);
        // the automaton's count is the one-search-per-keyword count
        let learned = set(&["backup", "dbadmin"], &[]);
        for p in [
            "/wp-admin/shell.php",
            "/shells/x",
            "/a/.env.bak/.git/config",
            "/%2e%2e/wp-login.php?x=.php",
            "/backup/shell/shell/xmlrpc.php",
            "/filemanager_shell/",
            "/blog/parallelization-with-the-shell.html",
        ] {
            let path = NormalizedPath::new(p);
            assert_eq!(learned.count_static(&path), learned.count_static_by_search(&path), "{p}");
        }
    }
}
