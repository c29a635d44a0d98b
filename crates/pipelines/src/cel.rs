//! A small CEL evaluator covering what the KFP compiler emits: conditions
//! (`int(inputs.parameter_values['x']) > 50`, `!(a == 'b') && …`) and
//! selectors (`parseJson(string_value)["a"]`), plus the operators a
//! hand-written condition is likely to use (`||`, arithmetic, `in`, `size`,
//! ternaries). Values are JSON; integral numbers compare equal to ints.
//!
//! A real CEL crate would be more faithful but costs build time; the grammar
//! the compiler writes is tiny and fully covered here and in the tests.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Lit(Value),
    /// A variable.
    Ident(String),
    /// `a.b`.
    Member(Box<Expr>, String),
    /// `a[b]`.
    Index(Box<Expr>, Box<Expr>),
    /// `f(args)`.
    Call(String, Vec<Expr>),
    /// `!a`, `-a`.
    Unary(char, Box<Expr>),
    /// `a op b`.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `c ? a : b`.
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `[a, b]`.
    List(Vec<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `||`
    Or,
    /// `&&`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(Value),
    Str(String),
    Op(&'static str),
}

/// Parses a CEL expression, or says where it stopped making sense.
pub fn parse(src: &str) -> Result<Expr, String> {
    let toks = lex(src)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p.expr()?;
    if p.pos < p.toks.len() {
        return Err(format!(
            "unexpected {:?} at token {} in CEL expression {src:?}",
            p.toks[p.pos], p.pos
        ));
    }
    Ok(e)
}

/// Evaluates `expr` with the given variables.
pub fn eval(expr: &Expr, vars: &BTreeMap<String, Value>) -> Result<Value, String> {
    Ok(match expr {
        Expr::Lit(v) => v.clone(),
        Expr::Ident(name) => vars
            .get(name)
            .cloned()
            .ok_or_else(|| format!("undeclared reference to {name:?}"))?,
        Expr::Member(obj, field) => {
            let o = eval(obj, vars)?;
            member(&o, field)?
        }
        Expr::Index(obj, idx) => {
            let o = eval(obj, vars)?;
            let i = eval(idx, vars)?;
            match (&o, &i) {
                (Value::Object(m), Value::String(k)) => m
                    .get(k)
                    .cloned()
                    .ok_or_else(|| format!("no such key: {k:?}"))?,
                (Value::Array(a), Value::Number(n)) => {
                    let ix = n.as_f64().unwrap_or(-1.0);
                    if ix < 0.0 || ix.fract() != 0.0 || ix as usize >= a.len() {
                        return Err(format!("index {n} out of range for a list of {}", a.len()));
                    }
                    a[ix as usize].clone()
                }
                _ => return Err(format!("cannot index {} with {}", kind(&o), kind(&i))),
            }
        }
        Expr::Call(f, args) => {
            let vals = args
                .iter()
                .map(|a| eval(a, vars))
                .collect::<Result<Vec<_>, _>>()?;
            call(f, &vals)?
        }
        Expr::Unary('!', e) => match eval(e, vars)? {
            Value::Bool(b) => Value::Bool(!b),
            v => return Err(format!("'!' needs a boolean, got {}", kind(&v))),
        },
        Expr::Unary(_, e) => match eval(e, vars)? {
            Value::Number(n) => num(-n.as_f64().unwrap_or(0.0)),
            v => return Err(format!("'-' needs a number, got {}", kind(&v))),
        },
        Expr::Binary(BinOp::And, a, b) => {
            if !truth(&eval(a, vars)?)? {
                Value::Bool(false)
            } else {
                Value::Bool(truth(&eval(b, vars)?)?)
            }
        }
        Expr::Binary(BinOp::Or, a, b) => {
            if truth(&eval(a, vars)?)? {
                Value::Bool(true)
            } else {
                Value::Bool(truth(&eval(b, vars)?)?)
            }
        }
        Expr::Binary(op, a, b) => binary(*op, &eval(a, vars)?, &eval(b, vars)?)?,
        Expr::Cond(c, a, b) => {
            if truth(&eval(c, vars)?)? {
                eval(a, vars)?
            } else {
                eval(b, vars)?
            }
        }
        Expr::List(items) => Value::Array(
            items
                .iter()
                .map(|e| eval(e, vars))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn member(o: &Value, field: &str) -> Result<Value, String> {
    match o {
        Value::Object(m) => m
            .get(field)
            .cloned()
            .ok_or_else(|| format!("no such field: {field:?}")),
        _ => Err(format!("cannot select field {field:?} of {}", kind(o))),
    }
}

fn truth(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(format!("expected a boolean, got {}", kind(v))),
    }
}

fn num(f: f64) -> Value {
    crate::value::normalize_numbers(
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
    )
}

fn kind(v: &Value) -> &'static str {
    crate::value::kind(v)
}

fn cmp_values(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y))
            .ok_or_else(|| "cannot compare NaN".to_owned()),
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(x.cmp(y)),
        _ => Err(format!("cannot compare {} with {}", kind(a), kind(b))),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    use std::cmp::Ordering::*;
    Ok(match op {
        BinOp::Eq => Value::Bool(equal(a, b)),
        BinOp::Ne => Value::Bool(!equal(a, b)),
        BinOp::Lt => Value::Bool(cmp_values(a, b)? == Less),
        BinOp::Le => Value::Bool(cmp_values(a, b)? != Greater),
        BinOp::Gt => Value::Bool(cmp_values(a, b)? == Greater),
        BinOp::Ge => Value::Bool(cmp_values(a, b)? != Less),
        BinOp::In => match b {
            Value::Array(items) => Value::Bool(items.iter().any(|x| equal(a, x))),
            Value::Object(m) => Value::Bool(a.as_str().is_some_and(|k| m.contains_key(k))),
            _ => return Err(format!("'in' needs a list or map, got {}", kind(b))),
        },
        BinOp::Add => match (a, b) {
            (Value::String(x), Value::String(y)) => Value::String(format!("{x}{y}")),
            (Value::Array(x), Value::Array(y)) => {
                Value::Array(x.iter().chain(y.iter()).cloned().collect())
            }
            _ => arith(op, a, b)?,
        },
        BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => arith(op, a, b)?,
        BinOp::And | BinOp::Or => unreachable_logic()?,
    })
}

fn unreachable_logic() -> Result<Value, String> {
    Err("internal: logical operators are evaluated lazily".to_owned())
}

fn arith(op: BinOp, a: &Value, b: &Value) -> Result<Value, String> {
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return Err(format!(
            "arithmetic needs numbers, got {} and {}",
            kind(a),
            kind(b)
        ));
    };
    let both_int = a.is_i64() && b.is_i64();
    let r = match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => {
            if y == 0.0 {
                return Err("division by zero".into());
            }
            if both_int { (x / y).trunc() } else { x / y }
        }
        BinOp::Rem => {
            if y == 0.0 {
                return Err("modulus by zero".into());
            }
            x % y
        }
        _ => return Err("internal: not arithmetic".into()),
    };
    Ok(num(r))
}

fn call(f: &str, args: &[Value]) -> Result<Value, String> {
    let one = || -> Result<&Value, String> {
        match args {
            [a] => Ok(a),
            _ => Err(format!("{f}() takes one argument, got {}", args.len())),
        }
    };
    Ok(match f {
        "int" => match one()? {
            Value::Number(n) => num(n.as_f64().unwrap_or(0.0).trunc()),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("int(): cannot convert {s:?}"))?,
            Value::Bool(b) => Value::from(*b as i64),
            v => return Err(format!("int(): cannot convert {}", kind(v))),
        },
        "double" => match one()? {
            Value::Number(n) => Value::Number(n.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("double(): cannot convert {s:?}"))?,
            v => return Err(format!("double(): cannot convert {}", kind(v))),
        },
        "string" => Value::String(crate::value::to_text(one()?)),
        "bool" => match one()? {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) if s == "true" => Value::Bool(true),
            Value::String(s) if s == "false" => Value::Bool(false),
            v => {
                return Err(format!(
                    "bool(): cannot convert {}",
                    crate::value::to_text(v)
                ));
            }
        },
        "parseJson" => match one()? {
            Value::String(s) => {
                serde_json::from_str(s).map_err(|e| format!("parseJson(): invalid JSON: {e}"))?
            }
            v => v.clone(),
        },
        "size" => match one()? {
            Value::String(s) => Value::from(s.chars().count() as i64),
            Value::Array(a) => Value::from(a.len() as i64),
            Value::Object(m) => Value::from(m.len() as i64),
            v => return Err(format!("size(): not defined for {}", kind(v))),
        },
        _ => return Err(format!("unknown function {f}()")),
    })
}

/// The variables a KFP condition or selector sees.
///
/// Conditions address `inputs.parameter_values[...]`; selectors address the
/// input value itself through the protobuf `Value` field names
/// (`string_value` holds JSON text for structured values).
pub fn kfp_vars(
    parameter_values: &Map<String, Value>,
    selected: Option<&Value>,
) -> BTreeMap<String, Value> {
    let mut inputs = Map::new();
    inputs.insert(
        "parameter_values".into(),
        Value::Object(parameter_values.clone()),
    );
    inputs.insert(
        "parameterValues".into(),
        Value::Object(parameter_values.clone()),
    );
    let mut vars = BTreeMap::new();
    vars.insert("inputs".to_owned(), Value::Object(inputs));
    if let Some(v) = selected {
        let text = match v {
            Value::String(s) => s.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        };
        vars.insert("string_value".into(), Value::String(text));
        vars.insert("number_value".into(), v.clone());
        vars.insert("bool_value".into(), v.clone());
        vars.insert("struct_value".into(), v.clone());
        vars.insert("list_value".into(), v.clone());
    }
    vars
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let b: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    const OPS: [&str; 21] = [
        "&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ".", ",", "+", "-",
        "*", "/", "%", "?",
    ];
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(b[s..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let s = i;
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || b[i] == '.'
                    || b[i] == 'e'
                    || b[i] == 'E'
                    || ((b[i] == '-' || b[i] == '+') && matches!(b[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            // CEL's unsigned suffix.
            if i < b.len() && b[i] == 'u' {
                i += 1;
            }
            let text: String = b[s..i].iter().filter(|c| **c != 'u').collect();
            let v: Value = if let Ok(n) = text.parse::<i64>() {
                Value::from(n)
            } else {
                text.parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| format!("bad number {text:?} in CEL expression"))?
            };
            out.push(Tok::Num(v));
        } else if c == '\'' || c == '"' {
            let q = c;
            i += 1;
            let mut s = String::new();
            loop {
                if i >= b.len() {
                    return Err(format!("unterminated string in CEL expression {src:?}"));
                }
                let ch = b[i];
                if ch == '\\' && i + 1 < b.len() {
                    s.push(match b[i + 1] {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                    i += 2;
                } else if ch == q {
                    i += 1;
                    break;
                } else {
                    s.push(ch);
                    i += 1;
                }
            }
            out.push(Tok::Str(s));
        } else if c == ':' {
            out.push(Tok::Op(":"));
            i += 1;
        } else {
            let rest: String = b[i..b.len().min(i + 2)].iter().collect();
            let op = OPS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| format!("unexpected character {c:?} in CEL expression {src:?}"))?;
            out.push(Tok::Op(op));
            i += op.len();
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Op(o)) if *o == op)
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if self.peek_op(op) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, op: &str) -> Result<(), String> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(format!(
                "expected '{op}' but found {:?}",
                self.toks.get(self.pos)
            ))
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let c = self.binary(0)?;
        if self.eat_op("?") {
            let a = self.expr()?;
            self.expect(":")?;
            let b = self.expr()?;
            return Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)));
        }
        Ok(c)
    }

    fn binop(&self) -> Option<(BinOp, u8)> {
        let t = self.toks.get(self.pos)?;
        Some(match t {
            Tok::Op("||") => (BinOp::Or, 1),
            Tok::Op("&&") => (BinOp::And, 2),
            Tok::Op("==") => (BinOp::Eq, 3),
            Tok::Op("!=") => (BinOp::Ne, 3),
            Tok::Op("<") => (BinOp::Lt, 3),
            Tok::Op("<=") => (BinOp::Le, 3),
            Tok::Op(">") => (BinOp::Gt, 3),
            Tok::Op(">=") => (BinOp::Ge, 3),
            Tok::Ident(s) if s == "in" => (BinOp::In, 3),
            Tok::Op("+") => (BinOp::Add, 4),
            Tok::Op("-") => (BinOp::Sub, 4),
            Tok::Op("*") => (BinOp::Mul, 5),
            Tok::Op("/") => (BinOp::Div, 5),
            Tok::Op("%") => (BinOp::Rem, 5),
            _ => return None,
        })
    }

    fn binary(&mut self, min: u8) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        while let Some((op, prec)) = self.binop() {
            if prec <= min {
                break;
            }
            self.pos += 1;
            let rhs = self.binary(prec)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_op("!") {
            return Ok(Expr::Unary('!', Box::new(self.unary()?)));
        }
        if self.eat_op("-") {
            return Ok(Expr::Unary('-', Box::new(self.unary()?)));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        loop {
            if self.eat_op(".") {
                match self.toks.get(self.pos) {
                    Some(Tok::Ident(f)) => {
                        let f = f.clone();
                        self.pos += 1;
                        e = Expr::Member(Box::new(e), f);
                    }
                    other => {
                        return Err(format!("expected a field name after '.', found {other:?}"));
                    }
                }
            } else if self.eat_op("[") {
                let idx = self.expr()?;
                self.expect("]")?;
                e = Expr::Index(Box::new(e), Box::new(idx));
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| "unexpected end of CEL expression".to_owned())?;
        self.pos += 1;
        match t {
            Tok::Num(v) => Ok(Expr::Lit(v)),
            Tok::Str(s) => Ok(Expr::Lit(Value::String(s))),
            Tok::Ident(id) => match id.as_str() {
                "true" => Ok(Expr::Lit(Value::Bool(true))),
                "false" => Ok(Expr::Lit(Value::Bool(false))),
                "null" => Ok(Expr::Lit(Value::Null)),
                _ if self.peek_op("(") => {
                    self.pos += 1;
                    let mut args = Vec::new();
                    if !self.eat_op(")") {
                        loop {
                            args.push(self.expr()?);
                            if self.eat_op(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    Ok(Expr::Call(id, args))
                }
                _ => Ok(Expr::Ident(id)),
            },
            Tok::Op("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                if !self.eat_op("]") {
                    loop {
                        items.push(self.expr()?);
                        if self.eat_op("]") {
                            break;
                        }
                        self.expect(",")?;
                    }
                }
                Ok(Expr::List(items))
            }
            other => Err(format!("unexpected {other:?} in CEL expression")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(src: &str, params: Value, expected: Result<Value, &str>) {
        let Value::Object(params) = params else {
            panic!()
        };
        let vars = kfp_vars(&params, None);
        let got = parse(src).and_then(|e| eval(&e, &vars));
        match (got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{src}"),
            (Err(g), Err(e)) => assert!(g.contains(e), "{src}: {g:?} should mention {e:?}"),
            (g, e) => panic!("{src}: got {g:?}, expected {e:?}"),
        }
    }

    #[test]
    fn compiler_conditions() {
        let p =
            json!({"pipelinechannel--flip-Output": "tails", "pipelinechannel--score-Output": 63});
        check(
            "inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads'",
            p.clone(),
            Ok(json!(false)),
        );
        check(
            "!(inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads') && inputs.parameter_values['pipelinechannel--flip-Output'] == 'tails'",
            p.clone(),
            Ok(json!(true)),
        );
        check(
            "int(inputs.parameter_values['pipelinechannel--score-Output']) > 50",
            p.clone(),
            Ok(json!(true)),
        );
        check(
            "int(inputs.parameter_values['pipelinechannel--score-Output']) <= 50",
            p.clone(),
            Ok(json!(false)),
        );
        check(
            "double(inputs.parameter_values['pipelinechannel--score-Output']) >= 62.5 || false",
            p.clone(),
            Ok(json!(true)),
        );
    }

    #[test]
    fn general_operators() {
        let p = json!({"xs": [1, 2, 3], "n": 7, "s": "abc"});
        check(
            "size(inputs.parameter_values['xs']) == 3",
            p.clone(),
            Ok(json!(true)),
        );
        check(
            "2 in inputs.parameter_values['xs']",
            p.clone(),
            Ok(json!(true)),
        );
        check(
            "inputs.parameter_values['n'] % 4 + 1 * 2",
            p.clone(),
            Ok(json!(5)),
        );
        check("inputs.parameter_values['n'] / 2", p.clone(), Ok(json!(3)));
        check(
            "inputs.parameter_values['s'] + 'd'",
            p.clone(),
            Ok(json!("abcd")),
        );
        check(
            "-inputs.parameter_values['n'] < 0 ? 'neg' : 'pos'",
            p.clone(),
            Ok(json!("neg")),
        );
        check("[1, 2][1]", p.clone(), Ok(json!(2)));
        check("'x' == 1.0", p.clone(), Ok(json!(false)));
        check("3 == 3.0", p.clone(), Ok(json!(true)));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let p = json!({"a": "x"});
        check(
            "inputs.parameter_values['b'] == 1",
            p.clone(),
            Err("no such key"),
        );
        check(
            "inputs.parameter_values['a'] > 1",
            p.clone(),
            Err("cannot compare"),
        );
        check("nope(1)", p.clone(), Err("unknown function"));
        check("'unterminated", p.clone(), Err("unterminated"));
        check("1 +", p.clone(), Err("unexpected end"));
        check("(1 == 1", p.clone(), Err("expected ')'"));
        check("1 / 0", p.clone(), Err("division by zero"));
        check("!1", p, Err("needs a boolean"));
    }

    #[test]
    fn selectors_over_struct_items() {
        let item = json!({"a": "x", "b": 1});
        let vars = kfp_vars(&Map::new(), Some(&item));
        let e = parse("parseJson(string_value)[\"b\"]").unwrap();
        assert_eq!(eval(&e, &vars).unwrap(), json!(1));
        let e = parse("parseJson(string_value)['a']").unwrap();
        assert_eq!(eval(&e, &vars).unwrap(), json!("x"));
    }
}
