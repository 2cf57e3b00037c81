//! The configuration file's grammar: hitch.conf(5), a superset of the 2016 stud's stud.conf,
//! read into a tree of [`Entry`]s with the line each came from. What a key *means* is not
//! decided here (see [`crate::keys`] and [`crate::settings`]).
//!
//! ```text
//! # a comment, to the end of the line
//! workers = 4                      # a bare word
//! backend = "[127.0.0.1]:6086"     # a quoted string (\" and \\ inside are unescaped)
//! tls-protos = TLSv1.2 TLSv1.3     # several words: a list
//! frontend = {                     # a block: entries until the matching }
//!     host = "*"
//!     port = "443"
//!     pem-file = { cert = "a.pem" private-key = "a.key" }
//! }
//! ```
//!
//! Like hitch's lexer, the grammar is made of tokens, not lines: `=`, `{`, `}`, quoted strings
//! and bare words (any run of characters other than space, `=`, `{`, `}`, `"` and `#`). An entry
//! is `KEY = VALUE…` or `KEY = { ENTRY… }`; a value runs until the next `KEY =`, `}` or the end.
//! Blocks nest two deep at most (a `pem-file` block inside a `frontend` block).

/// One `key = …` of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    /// The line (from 1) the key is on.
    pub(crate) line: usize,
    pub(crate) value: Value,
}

/// What follows a key's `=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// One or more words or quoted strings (at least one).
    Words(Vec<Word>),
    /// `{ … }`.
    Block(Vec<Entry>),
}

/// A bare word or a quoted string, unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Word {
    pub(crate) text: String,
    pub(crate) quoted: bool,
}

/// A syntax error at a line (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Blocks inside blocks deeper than this are refused (hitch has two levels).
const MAX_DEPTH: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Equals,
    Open,
    Close,
    Word(Word),
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, SyntaxError> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            '=' => tokens.push((Token::Equals, line)),
            '{' => tokens.push((Token::Open, line)),
            '}' => tokens.push((Token::Close, line)),
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => {
                            return Err(SyntaxError {
                                line: start,
                                message: "unterminated string (a quoted value ends on its line)"
                                    .into(),
                            })
                        }
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e @ ('"' | '\\')) => s.push(e),
                            Some('\n') | None => {
                                return Err(SyntaxError {
                                    line: start,
                                    message:
                                        "unterminated string (a quoted value ends on its line)"
                                            .into(),
                                })
                            }
                            Some(other) => {
                                s.push('\\');
                                s.push(other);
                            }
                        },
                        Some(other) => s.push(other),
                    }
                }
                tokens.push((
                    Token::Word(Word {
                        text: s,
                        quoted: true,
                    }),
                    start,
                ));
            }
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || matches!(n, '=' | '{' | '}' | '"' | '#') {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                tokens.push((
                    Token::Word(Word {
                        text: s,
                        quoted: false,
                    }),
                    line,
                ));
            }
        }
    }
    Ok(tokens)
}

/// Parses a whole file's text.
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    if text.contains('\0') {
        let line = text
            .split('\0')
            .next()
            .map_or(1, |t| t.matches('\n').count() + 1);
        return Err(SyntaxError {
            line,
            message: "a NUL byte: this is not a text file".into(),
        });
    }
    let tokens = tokenize(text)?;
    let mut pos = 0;
    let entries = entries(&tokens, &mut pos, 0)?;
    match tokens.get(pos) {
        None => Ok(entries),
        Some((_, line)) => Err(SyntaxError {
            line: *line,
            message: "'}' without a block to close".into(),
        }),
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Equals => "'='".into(),
        Token::Open => "'{'".into(),
        Token::Close => "'}'".into(),
        Token::Word(w) if w.quoted => format!("\"{}\"", w.text),
        Token::Word(w) => format!("'{}'", w.text),
    }
}

/// Entries until a `}` (left for the caller) or the end.
fn entries(
    tokens: &[(Token, usize)],
    pos: &mut usize,
    depth: usize,
) -> Result<Vec<Entry>, SyntaxError> {
    let mut out = Vec::new();
    while let Some((token, line)) = tokens.get(*pos) {
        let line = *line;
        let key = match token {
            Token::Close => break,
            Token::Word(w) if !w.quoted => w.text.clone(),
            other => {
                return Err(SyntaxError {
                    line,
                    message: format!("expected a key, found {}", describe(other)),
                })
            }
        };
        *pos += 1;
        let equals_line = match tokens.get(*pos) {
            Some((Token::Equals, at)) => {
                *pos += 1;
                *at
            }
            Some((other, _)) => {
                return Err(SyntaxError {
                    line,
                    message: format!("expected '=' after '{key}', found {}", describe(other)),
                })
            }
            None => {
                return Err(SyntaxError {
                    line,
                    message: format!("expected '=' after '{key}'"),
                })
            }
        };
        let value = match tokens.get(*pos) {
            Some((Token::Open, _)) => {
                if depth >= MAX_DEPTH {
                    return Err(SyntaxError {
                        line,
                        message: format!("'{key}' opens a block nested too deep"),
                    });
                }
                *pos += 1;
                let inner = entries(tokens, pos, depth + 1)?;
                match tokens.get(*pos) {
                    Some((Token::Close, _)) => *pos += 1,
                    _ => {
                        return Err(SyntaxError {
                            line,
                            message: format!("the block of '{key}' is not closed with '}}'"),
                        })
                    }
                }
                Value::Block(inner)
            }
            _ => {
                let mut words = Vec::new();
                while let Some((Token::Word(w), at)) = tokens.get(*pos) {
                    // A value stays on the line of its '='; a bare word followed by '=' is the
                    // next key, not part of this value.
                    let next_is_key = !w.quoted
                        && matches!(tokens.get(*pos + 1), Some((Token::Equals, _)))
                        && !words.is_empty();
                    if next_is_key || *at != equals_line {
                        break;
                    }
                    words.push(w.clone());
                    *pos += 1;
                }
                if words.is_empty() {
                    return Err(SyntaxError {
                        line,
                        message: format!("'{key}' has no value"),
                    });
                }
                Value::Words(words)
            }
        };
        out.push(Entry { key, line, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(e: &Entry) -> Vec<&str> {
        match &e.value {
            Value::Words(w) => w.iter().map(|w| w.text.as_str()).collect(),
            Value::Block(_) => vec!["<block>"],
        }
    }

    #[test]
    fn keys_values_comments_and_lines() {
        let text = "# hitch\n\nworkers = 4 # cores\nbackend = \"[127.0.0.1]:6086\"\n\
                    tls-protos = TLSv1.2 TLSv1.3\ndaemon=on\n";
        let got = parse(text).expect("parses");
        let keys: Vec<(&str, usize)> = got.iter().map(|e| (e.key.as_str(), e.line)).collect();
        assert_eq!(
            keys,
            [
                ("workers", 3),
                ("backend", 4),
                ("tls-protos", 5),
                ("daemon", 6)
            ]
        );
        assert_eq!(words(&got[0]), ["4"]);
        assert_eq!(words(&got[1]), ["[127.0.0.1]:6086"]);
        assert_eq!(words(&got[2]), ["TLSv1.2", "TLSv1.3"]);
        assert_eq!(words(&got[3]), ["on"]);
    }

    #[test]
    fn blocks_nest_and_may_share_a_line() {
        let text = "frontend = {\n  host = \"*\"\n  port = \"443\"\n  pem-file = { cert = \"a.pem\" private-key = \"a.key\" }\n}\nworkers = 1\n";
        let got = parse(text).expect("parses");
        assert_eq!(got.len(), 2);
        let Value::Block(inner) = &got[0].value else {
            panic!("not a block")
        };
        assert_eq!(inner.len(), 3);
        assert_eq!(inner[2].line, 4);
        let Value::Block(pem) = &inner[2].value else {
            panic!("not a block")
        };
        assert_eq!(words(&pem[0]), ["a.pem"]);
        assert_eq!(words(&pem[1]), ["a.key"]);
        assert_eq!(got[1].line, 6);
    }

    #[test]
    fn quoted_strings_keep_hashes_and_unescape_quotes() {
        let got =
            parse("ciphers = \"A:B # not a comment \\\"x\\\"\"\nuser = \"\"\n").expect("parses");
        assert_eq!(words(&got[0]), ["A:B # not a comment \"x\""]);
        assert_eq!(words(&got[1]), [""]);
    }

    #[test]
    fn mistakes_name_their_line() {
        for (text, line, needle) in [
            ("workers = 4\nbackend\n", 2, "expected '=' after 'backend'"),
            (
                "workers = 4\nbackend frontend\n",
                2,
                "expected '=' after 'backend'",
            ),
            ("a = 1\n\nb =\n", 3, "'b' has no value"),
            ("a = 1\nb = \"open\nc = 2\n", 2, "unterminated string"),
            ("frontend = {\n host = x\n", 1, "not closed"),
            ("a = 1\n}\n", 2, "without a block"),
            ("= 1\n", 1, "expected a key"),
            ("a = { b = { c = { d = 1 } } }", 1, "nested too deep"),
            ("a = 1\nb = 2\0\n", 2, "NUL"),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}: {err:?}");
            assert!(err.message.contains(needle), "{text:?}: {err:?}");
        }
    }

    #[test]
    fn an_empty_file_has_no_entries() {
        assert_eq!(parse("").expect("empty"), vec![]);
        assert_eq!(parse("# only a comment\n\n").expect("comments"), vec![]);
    }
}
