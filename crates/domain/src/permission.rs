//! What a verification requires of a key's scopes: a plain list (the key holds all of them) or a
//! permission expression such as `orders:read AND (orders:write OR admin)`.
//!
//! Expression grammar (AND binds tighter than OR; the operators are ASCII case-insensitive, so
//! scopes named `and` or `or` cannot be written in an expression):
//!
//! ```text
//! expr   = term *( "OR" term )
//! term   = factor *( "AND" factor )
//! factor = scope / "(" expr ")"
//! ```
//!
//! Tokens are separated by white space or parentheses; a scope is what [`Scope::check`] takes.

use std::fmt;

use crate::scope::{Scope, MAX_SCOPES};

/// The longest expression taken, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 4096;
/// The deepest nesting of parentheses taken.
pub const MAX_DEPTH: usize = 16;

/// What a verification requires of the key's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    /// The key holds every one of these (none: any key will do). Checked by
    /// [`Scope::check_required`] where the verification starts.
    All(Vec<String>),
    /// The key's scopes satisfy this expression.
    Expression(Expr),
}

impl Default for Permission {
    fn default() -> Self {
        Self::All(Vec::new())
    }
}

impl Permission {
    /// Whether a key whose scopes answer `holds` is permitted.
    pub fn allows(&self, holds: impl Fn(&str) -> bool + Copy) -> bool {
        match self {
            Self::All(scopes) => scopes.iter().all(|s| holds(s)),
            Self::Expression(expr) => expr.allows(holds),
        }
    }
}

/// A parsed permission expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Scope(String),
    /// Every one holds (at least two).
    And(Vec<Expr>),
    /// At least one holds (at least two).
    Or(Vec<Expr>),
}

/// Why an expression was refused, and where: `at` is the 1-based character position of the
/// offending token (one past the last character when the expression ended too soon).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at position {at}: {reason}")]
pub struct ExprError {
    pub at: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Open,
    Close,
    And,
    Or,
    Word(&'a str),
    End,
}

impl Token<'_> {
    fn describe(&self) -> String {
        match self {
            Self::Open => "'('".into(),
            Self::Close => "')'".into(),
            Self::And => "AND".into(),
            Self::Or => "OR".into(),
            Self::Word(w) => format!("{w:?}"),
            Self::End => "the end".into(),
        }
    }
}

/// Splits `text` into tokens, each with its 1-based character position.
fn tokens<'a>(text: &'a str) -> Vec<(usize, Token<'a>)> {
    let mut out = Vec::new();
    let mut word_start: Option<(usize, usize)> = None; // (byte, char position)
    let mut position = 0;
    let end_word = |out: &mut Vec<(usize, Token<'a>)>, start: Option<(usize, usize)>, to: usize| {
        if let Some((byte, at)) = start {
            let word = &text[byte..to];
            let token = if word.eq_ignore_ascii_case("and") {
                Token::And
            } else if word.eq_ignore_ascii_case("or") {
                Token::Or
            } else {
                Token::Word(word)
            };
            out.push((at, token));
        }
    };
    for (byte, c) in text.char_indices() {
        position += 1;
        if c.is_whitespace() || c == '(' || c == ')' {
            end_word(&mut out, word_start.take(), byte);
            match c {
                '(' => out.push((position, Token::Open)),
                ')' => out.push((position, Token::Close)),
                _ => {}
            }
        } else if word_start.is_none() {
            word_start = Some((byte, position));
        }
    }
    end_word(&mut out, word_start, text.len());
    out.push((position + 1, Token::End));
    out
}

struct Parser<'a> {
    tokens: Vec<(usize, Token<'a>)>,
    next: usize,
    scopes: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &(usize, Token<'a>) {
        // `tokens` always ends with `End`, which is never consumed.
        &self.tokens[self.next.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> (usize, Token<'a>) {
        let token = self.peek().clone();
        if token.1 != Token::End {
            self.next += 1;
        }
        token
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let mut terms = vec![self.term(depth)?];
        while self.peek().1 == Token::Or {
            self.bump();
            terms.push(self.term(depth)?);
        }
        Ok(one_or(terms, Expr::Or))
    }

    fn term(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let mut factors = vec![self.factor(depth)?];
        while self.peek().1 == Token::And {
            self.bump();
            factors.push(self.factor(depth)?);
        }
        Ok(one_or(factors, Expr::And))
    }

    fn factor(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let (at, token) = self.bump();
        match token {
            Token::Word(word) => {
                Scope::check(word).map_err(|e| ExprError {
                    at,
                    reason: e.to_string(),
                })?;
                self.scopes += 1;
                if self.scopes > MAX_SCOPES {
                    return Err(ExprError {
                        at,
                        reason: format!("an expression names at most {MAX_SCOPES} scopes"),
                    });
                }
                Ok(Expr::Scope(word.to_owned()))
            }
            Token::Open => {
                if depth >= MAX_DEPTH {
                    return Err(ExprError {
                        at,
                        reason: format!("parentheses nest at most {MAX_DEPTH} deep"),
                    });
                }
                let inner = self.expr(depth + 1)?;
                let (close_at, close) = self.bump();
                if close != Token::Close {
                    return Err(ExprError {
                        at: close_at,
                        reason: format!(
                            "expected AND, OR or ')' closing the '(' at position {at}, found {}",
                            close.describe()
                        ),
                    });
                }
                Ok(inner)
            }
            other => Err(ExprError {
                at,
                reason: format!("expected a scope or '(', found {}", other.describe()),
            }),
        }
    }
}

fn one_or(mut items: Vec<Expr>, many: fn(Vec<Expr>) -> Expr) -> Expr {
    if items.len() == 1 {
        items.remove(0)
    } else {
        many(items)
    }
}

impl Expr {
    /// Parses an expression (see the module's grammar), at most [`MAX_EXPRESSION_LEN`] bytes,
    /// [`MAX_SCOPES`] scopes and [`MAX_DEPTH`] levels of parentheses.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        if text.len() > MAX_EXPRESSION_LEN {
            return Err(ExprError {
                at: 1,
                reason: format!("an expression is at most {MAX_EXPRESSION_LEN} bytes"),
            });
        }
        let mut parser = Parser {
            tokens: tokens(text),
            next: 0,
            scopes: 0,
        };
        let expr = parser.expr(0)?;
        let (at, rest) = parser.bump();
        if rest != Token::End {
            let reason = match rest {
                Token::Close => "')' without its '('".to_owned(),
                other => format!("expected AND or OR, found {}", other.describe()),
            };
            return Err(ExprError { at, reason });
        }
        Ok(expr)
    }

    /// Whether a key whose scopes answer `holds` satisfies the expression.
    pub fn allows(&self, holds: impl Fn(&str) -> bool + Copy) -> bool {
        match self {
            Self::Scope(s) => holds(s),
            Self::And(all) => all.iter().all(|e| e.allows(holds)),
            Self::Or(any) => any.iter().any(|e| e.allows(holds)),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, items: &[Expr], op: &str| {
            f.write_str("(")?;
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{e}")?;
            }
            f.write_str(")")
        };
        match self {
            Self::Scope(s) => f.write_str(s),
            Self::And(items) => join(f, items, "AND"),
            Self::Or(items) => join(f, items, "OR"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held<'a>(scopes: &'a [&'a str]) -> impl Fn(&str) -> bool + Copy + 'a {
        move |s| scopes.contains(&s)
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let e = Expr::parse("a OR b AND c").unwrap();
        assert_eq!(e.to_string(), "(a OR (b AND c))");
        assert!(e.allows(held(&["a"])));
        assert!(!e.allows(held(&["b"])));
        assert!(e.allows(held(&["b", "c"])));
        let e = Expr::parse("orders:read AND (orders:write OR admin)").unwrap();
        assert!(e.allows(held(&["orders:read", "admin"])));
        assert!(!e.allows(held(&["orders:read"])));
        assert!(!e.allows(held(&["admin", "orders:write"])));
        assert!(Expr::parse("(a)and(b)or c").unwrap().allows(held(&["c"])));
    }

    #[test]
    fn malformed_expressions_name_the_position() {
        let cases = [
            ("", 1, "expected a scope or '(', found the end"),
            ("a AND", 6, "expected a scope or '(', found the end"),
            ("a OR OR b", 6, "expected a scope or '(', found OR"),
            ("(a OR b", 8, "closing the '(' at position 1"),
            ("a b", 3, "expected AND or OR, found \"b\""),
            ("a)", 2, "')' without its '('"),
            ("a AND b!", 7, "is invalid"),
            ("()", 2, "expected a scope or '(', found ')'"),
            ("keyward:root", 1, "not one of keyward's scopes"),
        ];
        for (text, at, reason) in cases {
            let e = Expr::parse(text).unwrap_err();
            assert_eq!(e.at, at, "{text:?}: {e}");
            assert!(e.reason.contains(reason), "{text:?}: {e}");
        }
        let deep = format!("{}a{}", "(".repeat(17), ")".repeat(17));
        assert!(Expr::parse(&deep).unwrap_err().reason.contains("nest"));
        let many = vec!["s"; 65].join(" OR ");
        assert!(Expr::parse(&many)
            .unwrap_err()
            .reason
            .contains("at most 64"));
    }
}
