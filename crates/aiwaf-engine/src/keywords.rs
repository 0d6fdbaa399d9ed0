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
    words: HashMap<String, KeywordSource>,
    fragments: Vec<(String, KeywordSource)>,
    automaton: Option<AhoCorasick>,
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
        let mut words = HashMap::new();
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
        let automaton = if fragments.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .build(fragments.iter().map(|(f, _)| f.as_str()))
                .ok()
        };
        KeywordSet { words, fragments, automaton }
    }

    /// The first keyword found in any form of the path.
    pub fn find(&self, path: &NormalizedPath) -> Option<KeywordHit> {
        for form in path.forms() {
            if let Some(ac) = &self.automaton
                && let Some(m) = ac.find(form)
            {
                let (k, source) = &self.fragments[m.pattern().as_usize()];
                return Some(KeywordHit { keyword: k.clone(), source: *source });
            }
            if !self.words.is_empty() {
                for t in tokens(form) {
                    if let Some(source) = self.words.get(t) {
                        return Some(KeywordHit { keyword: t.to_string(), source: *source });
                    }
                }
            }
        }
        None
    }

    /// Number of static keyword entries present in a path, counted once each (a model feature).
    pub fn count_static(&self, path: &NormalizedPath) -> u32 {
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

    #[test]
    fn counts_static_hits() {
        let s = set(&[], &[]);
        assert_eq!(s.count_static(&NormalizedPath::new("/wp-admin/shell.php")), 3);
        assert_eq!(s.count_static(&NormalizedPath::new("/ok")), 0);
    }
}
