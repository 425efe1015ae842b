//! The condition language: every operator and function, precedence,
//! short-circuit, every error with its position, the caps, the static check,
//! and parsing arbitrary input without panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use convergio_graph::expr::{
    EvalError, EvalErrorKind, Expr, Known, MAX_DEPTH, MAX_LEN, NameKind, ParseError, Scope,
};
use serde_json::{Value, json};

fn state() -> Value {
    json!({
        "name": "Ada",
        "count": 3,
        "ratio": 0.5,
        "done": false,
        "tags": ["urgent", "billing"],
        "user": {"email": "ada@example.com", "age": 36},
        "map": {"a key": 1, "k": null},
        "empty": "",
        "big": 9_223_372_036_854_775_807_i64,
    })
}

fn nodes() -> Value {
    json!({
        "classify": {"output": {"label": "spam", "score": 0.9}},
        "fetch-page": {"output": {"status": 200}},
    })
}

fn eval(src: &str) -> Value {
    let (s, n) = (state(), nodes());
    Expr::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .eval(&Scope::new(&s, &n))
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn eval_err(src: &str) -> EvalError {
    let (s, n) = (state(), nodes());
    match Expr::parse(src).unwrap().eval(&Scope::new(&s, &n)) {
        Ok(v) => panic!("{src} gave {v}, expected an error"),
        Err(e) => e,
    }
}

fn parse_err(src: &str) -> ParseError {
    match Expr::parse(src) {
        Ok(e) => panic!("{src} parsed as {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn literals() {
    assert_eq!(eval("null"), Value::Null);
    assert_eq!(eval("true"), json!(true));
    assert_eq!(eval("false"), json!(false));
    assert_eq!(eval("42"), json!(42));
    assert_eq!(eval("1.25"), json!(1.25));
    assert_eq!(eval("2e3"), json!(2000.0));
    assert_eq!(eval("5E-1"), json!(0.5));
    assert_eq!(
        eval(r#""a \"quoted\" \\ word\nnext""#),
        json!("a \"quoted\" \\ word\nnext")
    );
    assert_eq!(eval(r#""héllo""#), json!("héllo"));
}

#[test]
fn paths() {
    assert_eq!(eval("state.name"), json!("Ada"));
    assert_eq!(eval("state.user.email"), json!("ada@example.com"));
    assert_eq!(eval("state.tags[1]"), json!("billing"));
    assert_eq!(eval(r#"state.map["a key"]"#), json!(1));
    assert_eq!(eval(r#"state["name"]"#), json!("Ada"));
    assert_eq!(eval("state.map.k"), Value::Null);
    assert_eq!(eval("nodes.classify.output.label"), json!("spam"));
    assert_eq!(eval(r#"nodes["fetch-page"].output.status"#), json!(200));
    assert_eq!(eval("state").get("count"), Some(&json!(3)));
    // Keywords are plain keys after a dot.
    let s = json!({"in": {"true": 1}});
    let n = json!({});
    let v = Expr::parse("state.in.true")
        .unwrap()
        .eval(&Scope::new(&s, &n))
        .unwrap();
    assert_eq!(v, json!(1));
}

#[test]
fn comparisons() {
    for (src, want) in [
        ("state.count == 3", true),
        ("state.count == 3.0", true),
        ("state.count != 3", false),
        ("state.name == \"Ada\"", true),
        ("state.name != \"ada\"", true),
        ("null == null", true),
        ("null == false", false),
        ("0 == false", false),
        ("\"1\" == 1", false),
        ("state.user == state.user", true),
        ("state.user != state.user", false),
        ("state.user == state.map", false),
        ("state.tags == state.tags", true),
        ("state.count < 4", true),
        ("state.count < 3", false),
        ("state.count <= 3", true),
        ("state.count > 2.5", true),
        ("state.count > 3", false),
        ("state.count >= 3", true),
        ("state.ratio < 1", true),
        ("\"apple\" < \"banana\"", true),
        ("\"b\" <= \"a\"", false),
        ("\"b\" > \"B\"", true),
        ("\"abc\" >= \"abc\"", true),
    ] {
        assert_eq!(eval(src), json!(want), "{src}");
    }
    // Object and array equality is deep, with numbers by value.
    let s = json!({"a": {"x": [1, 2.0]}, "b": {"x": [1.0, 2]}, "c": {"x": [2, 1]}});
    let n = json!({});
    let scope = Scope::new(&s, &n);
    assert!(
        Expr::parse("state.a == state.b")
            .unwrap()
            .truthy(&scope)
            .unwrap()
    );
    assert!(
        Expr::parse("state.a != state.c")
            .unwrap()
            .truthy(&scope)
            .unwrap()
    );
}

#[test]
fn ordering_only_between_numbers_or_strings() {
    let e = eval_err("state.count < \"4\"");
    assert_eq!(e.kind, EvalErrorKind::Type);
    assert_eq!(
        e.message,
        "'<' orders two numbers or two strings, not a number and a string"
    );
    assert_eq!(e.column, 13);
    let e = eval_err("null >= null");
    assert_eq!(
        e.message,
        "'>=' orders two numbers or two strings, not null and null"
    );
    assert_eq!(e.column, 6);
    let e = eval_err("state.tags > 1");
    assert_eq!(
        e.message,
        "'>' orders two numbers or two strings, not an array and a number"
    );
}

#[test]
fn boolean_operators() {
    for (src, want) in [
        ("true && true", true),
        ("true && false", false),
        ("false || true", true),
        ("false || false", false),
        ("!false", true),
        ("!!true", true),
        ("!state.done", true),
        ("state.count > 1 && state.name == \"Ada\"", true),
    ] {
        assert_eq!(eval(src), json!(want), "{src}");
    }
}

#[test]
fn short_circuit_skips_the_right_side() {
    assert_eq!(eval("false && state.missing"), json!(false));
    assert_eq!(eval("true || state.missing"), json!(true));
    assert_eq!(eval("false && 1"), json!(false));
    assert_eq!(eval("exists(state.opt) && state.opt > 1"), json!(false));
    // Without the short-circuit the right side is evaluated, and fails.
    let e = eval_err("true && state.missing");
    assert_eq!(e.kind, EvalErrorKind::MissingPath);
    assert_eq!(e.column, 15);
    let e = eval_err("false || state.missing");
    assert_eq!(e.kind, EvalErrorKind::MissingPath);
}

#[test]
fn boolean_operators_take_only_booleans() {
    let e = eval_err("state.name && true");
    assert_eq!(e.kind, EvalErrorKind::Type);
    assert_eq!(
        e.message,
        "the left side of '&&' is a string, not a boolean"
    );
    assert_eq!(e.column, 1);
    let e = eval_err("true && state.count");
    assert_eq!(
        e.message,
        "the right side of '&&' is a number, not a boolean"
    );
    assert_eq!(e.column, 9);
    let e = eval_err("false || null");
    assert_eq!(e.message, "the right side of '||' is null, not a boolean");
    let e = eval_err("state.tags || true");
    assert_eq!(
        e.message,
        "the left side of '||' is an array, not a boolean"
    );
    let e = eval_err("!state.count");
    assert_eq!(e.message, "the operand of '!' is a number, not a boolean");
    assert_eq!(e.column, 2);
}

#[test]
fn membership() {
    for (src, want) in [
        ("\"urgent\" in state.tags", true),
        ("\"spam\" in state.tags", false),
        ("\"email\" in state.user", true),
        ("\"nope\" in state.user", false),
        ("\"example\" in state.user.email", true),
        ("\"Example\" in state.user.email", false),
        ("\"\" in state.empty", true),
    ] {
        assert_eq!(eval(src), json!(want), "{src}");
    }
    let s = json!({"xs": [1, "1", null, {"a": 1.0}]});
    let n = json!({});
    let scope = Scope::new(&s, &n);
    for src in [
        "1.0 in state.xs",
        "\"1\" in state.xs",
        "null in state.xs",
        "state.xs[3] in state.xs",
    ] {
        assert!(Expr::parse(src).unwrap().truthy(&scope).unwrap(), "{src}");
    }
    assert!(
        !Expr::parse("2 in state.xs")
            .unwrap()
            .truthy(&scope)
            .unwrap()
    );

    let e = eval_err("3 in state.user");
    assert_eq!(
        e.message,
        "'in' looks up an object's key with a string, not a number"
    );
    assert_eq!(e.column, 3);
    let e = eval_err("1 in state.name");
    assert_eq!(
        e.message,
        "'in' looks for a substring of a string, not for a number"
    );
    let e = eval_err("\"a\" in state.count");
    assert_eq!(
        e.message,
        "'in' looks in an array, an object or a string, not in a number"
    );
}

#[test]
fn arithmetic() {
    for (src, want) in [
        ("1 + 2", json!(3)),
        ("state.count - 5", json!(-2)),
        ("state.count * 4", json!(12)),
        ("6 / 3", json!(2)),
        ("7 / 2", json!(3.5)),
        ("state.ratio + 1", json!(1.5)),
        ("0.5 * 4", json!(2.0)),
        ("-state.count", json!(-3)),
        ("-state.ratio", json!(-0.5)),
        ("state.count + 1 == 4", json!(true)),
        ("0.1 + 0.2 > 0.3", json!(true)),
    ] {
        assert_eq!(eval(src), want, "{src}");
    }
    // Past i64 the result is a float, not a wrapped integer.
    assert_eq!(
        eval("state.big + 1"),
        json!(9_223_372_036_854_775_808.0_f64)
    );
    assert_eq!(eval("18446744073709551615 > 1"), json!(true));

    let e = eval_err("state.count / 0");
    assert_eq!(e.kind, EvalErrorKind::DivisionByZero);
    assert_eq!(e.message, "division by zero");
    assert_eq!(e.column, 13);
    let e = eval_err("state.ratio / 0.0");
    assert_eq!(e.kind, EvalErrorKind::DivisionByZero);
    let e = eval_err("1e308 * 10");
    assert_eq!(e.kind, EvalErrorKind::OutOfRange);
    assert_eq!(e.message, "the result of '*' is out of range");
    let e = eval_err("state.name + 1");
    assert_eq!(e.kind, EvalErrorKind::Type);
    assert_eq!(
        e.message,
        "'+' takes two numbers, not a string and a number"
    );
    assert_eq!(e.column, 12);
    let e = eval_err("-state.name");
    assert_eq!(e.message, "unary '-' takes a number, not a string");
    assert_eq!(e.column, 2);
}

#[test]
fn precedence() {
    // && binds tighter than ||: (true || false) && false would be false.
    assert_eq!(eval("true || false && false"), json!(true));
    assert_eq!(eval("false && false || true"), json!(true));
    // ! binds tighter than ==: !(true == 1) would be true.
    assert_eq!(eval("!true == 1"), json!(false));
    assert_eq!(eval("!(true == 1)"), json!(true));
    // Unary minus binds tighter than +: -(2 + 3) would be -5.
    assert_eq!(eval("-2 + 3"), json!(1));
    assert_eq!(eval("2 - -3"), json!(5));
    assert_eq!(eval("--2"), json!(2));
    // * before +, left to right within a level.
    assert_eq!(eval("2 + 3 * 4"), json!(14));
    assert_eq!(eval("(2 + 3) * 4"), json!(20));
    assert_eq!(eval("10 - 2 - 3"), json!(5));
    assert_eq!(eval("24 / 4 / 2"), json!(3));
    // Arithmetic before comparison before &&.
    assert_eq!(eval("1 + 1 == 2 && 2 * 2 > 3"), json!(true));
}

#[test]
fn functions() {
    assert_eq!(eval("len(state.name)"), json!(3));
    assert_eq!(eval("len(\"héllo\")"), json!(5));
    assert_eq!(eval("len(state.tags)"), json!(2));
    assert_eq!(eval("len(state.user)"), json!(2));
    assert_eq!(eval("len(state.empty) == 0"), json!(true));
    assert_eq!(eval("-len(\"ab\")"), json!(-2));
    assert_eq!(eval("lower(state.name)"), json!("ada"));
    assert_eq!(eval("upper(\"straße\")"), json!("STRASSE"));
    assert_eq!(eval("lower(upper(state.name)) == \"ada\""), json!(true));
    assert_eq!(eval("exists(state.name)"), json!(true));
    assert_eq!(eval("exists(state.map.k)"), json!(true));
    assert_eq!(eval("exists(state.nmae)"), json!(false));
    assert_eq!(eval("exists(state.user.phone)"), json!(false));
    assert_eq!(eval("exists(state.tags[5])"), json!(false));
    assert_eq!(eval("exists(state.name.first)"), json!(false));
    assert_eq!(eval("exists(nodes.classify.output)"), json!(true));
    assert_eq!(eval("exists(nodes.later.output)"), json!(false));
    assert_eq!(eval("!exists(state.missing)"), json!(true));

    let e = eval_err("len(state.count)");
    assert_eq!(
        e.message,
        "len() takes a string, an array or an object, not a number"
    );
    assert_eq!(e.column, 5);
    let e = eval_err("lower(state.tags)");
    assert_eq!(e.message, "lower() takes a string, not an array");
    let e = eval_err("upper(null)");
    assert_eq!(e.message, "upper() takes a string, not null");
    let e = eval_err("len(state.missing)");
    assert_eq!(e.kind, EvalErrorKind::MissingPath);
}

#[test]
fn missing_paths_are_errors_naming_the_path() {
    let e = eval_err("state.nmae == \"Ada\"");
    assert_eq!(e.kind, EvalErrorKind::MissingPath);
    assert_eq!(e.message, r#"state.nmae: no key "nmae" in state"#);
    assert_eq!((e.offset, e.line, e.column), (6, 1, 7));
    assert_eq!(
        e.to_string(),
        r#"state.nmae: no key "nmae" in state (at column 7)"#
    );

    let e = eval_err("state.user.phone");
    assert_eq!(
        e.message,
        r#"state.user.phone: no key "phone" in state.user"#
    );
    assert_eq!(e.column, 12);
    let e = eval_err("state.tags[2]");
    assert_eq!(
        e.message,
        "state.tags[2]: index 2 is out of range; state.tags has 2 items"
    );
    assert_eq!(e.column, 11);
    let e = eval_err("state.name.first");
    assert_eq!(
        e.message,
        "state.name.first: state.name is a string, not an object"
    );
    let e = eval_err("state.user[0]");
    assert_eq!(
        e.message,
        "state.user[0]: state.user is an object, not an array"
    );
    let e = eval_err(r#"state.map["no such"]"#);
    assert_eq!(
        e.message,
        r#"state.map["no such"]: no key "no such" in state.map"#
    );
    let e = eval_err("nodes.later.output");
    assert_eq!(e.message, r#"nodes.later: no key "later" in nodes"#);
}

#[test]
fn a_condition_must_be_a_boolean() {
    let (s, n) = (state(), nodes());
    let scope = Scope::new(&s, &n);
    assert!(
        Expr::parse("state.count == 3")
            .unwrap()
            .truthy(&scope)
            .unwrap()
    );
    assert!(!Expr::parse("state.done").unwrap().truthy(&scope).unwrap());
    for (src, msg) in [
        (
            "state.count + 1",
            "condition `state.count + 1` gave a number (4), not a boolean",
        ),
        (
            "state.name",
            "condition `state.name` gave a string (\"Ada\"), not a boolean",
        ),
        (
            "state.map.k",
            "condition `state.map.k` gave null (null), not a boolean",
        ),
        (
            "state.tags",
            "condition `state.tags` gave an array ([\"urgent\",\"billing\"]), not a boolean",
        ),
    ] {
        let e = Expr::parse(src).unwrap().truthy(&scope).unwrap_err();
        assert_eq!(e.kind, EvalErrorKind::NotBoolean);
        assert_eq!(e.message, msg);
        assert_eq!(e.column, 1);
    }
    // Long values are cut in the message.
    let s = json!({"text": "x".repeat(500)});
    let e = Expr::parse("state.text")
        .unwrap()
        .truthy(&Scope::new(&s, &n))
        .unwrap_err();
    assert!(e.message.len() < 200, "{}", e.message);
    assert!(e.message.contains('…'));
}

#[test]
fn parse_errors_say_where_and_what_was_expected() {
    let cases: &[(&str, &str, usize)] = &[
        ("state.a && ", "expected a value after '&&'", 12),
        (
            "state.a == 1 && )",
            "expected a value after '&&', found ')'",
            17,
        ),
        ("", "the expression is empty", 1),
        ("   ", "the expression is empty", 1),
        (")", "expected a value, found ')'", 1),
        ("1 +", "expected a value after '+'", 4),
        (
            "(1 + 2",
            "expected ')' to close the '(', found the end of the expression",
            7,
        ),
        (
            "1 2",
            "expected an operator or the end of the expression, found the number 2",
            3,
        ),
        (
            "state.a state.b",
            "expected an operator or the end of the expression, found 'state'",
            9,
        ),
        (
            "state.a = 1",
            "expected '==' (a single '=' is not an operator)",
            9,
        ),
        (
            "true & false",
            "expected '&&' (a single '&' is not an operator)",
            6,
        ),
        (
            "true | false",
            "expected '||' (a single '|' is not an operator)",
            6,
        ),
        ("'a' == state.a", "strings are written in double quotes", 1),
        ("state.a == #", "unexpected character '#'", 12),
        ("\"abc", "unterminated string: expected a closing '\"'", 1),
        (
            "\"a\\tb\"",
            "unknown escape '\\t' in a string; the escapes are \\\" \\\\ and \\n",
            3,
        ),
        ("1e999", "the number 1e999 is out of range", 1),
        (
            "foo == 1",
            "unknown name 'foo': a value is null, true, false, a number, a string, a path starting with state, nodes, item, index or output, or a call of len, exists, lower or upper",
            1,
        ),
        (
            "1 < 2 < 3",
            "comparisons do not chain: '<' after '<'; join two comparisons with '&&' or use parentheses",
            7,
        ),
        (
            "state.a == 1 != true",
            "comparisons do not chain: '!=' after '=='; join two comparisons with '&&' or use parentheses",
            14,
        ),
        (
            "state.",
            "expected a key name after '.', found the end of the expression",
            7,
        ),
        (
            "state.0",
            "expected a key name after '.', found the number 0; an index is written in brackets: [0]",
            7,
        ),
        (
            "state.a[-1]",
            "expected an index or a quoted key after '[', found '-'",
            9,
        ),
        (
            "state.a[1.5]",
            "an index is a whole number from 0, found 1.5",
            9,
        ),
        (
            "state.a[0",
            "expected ']' to close the '[', found the end of the expression",
            10,
        ),
        ("len state.a", "expected '(' after 'len', found 'state'", 5),
        (
            "len(state.a",
            "expected ')' to close len(, found the end of the expression",
            12,
        ),
        (
            "exists(1)",
            "exists() takes a path starting with state, nodes, item, index or output, found the number 1",
            8,
        ),
        (
            "exists(state.a + 1)",
            "expected ')' to close exists(, found '+'",
            16,
        ),
        ("in state.a", "expected a value, found 'in'", 1),
        ("1 == in", "expected a value after '==', found 'in'", 6),
    ];
    for (src, message, column) in cases {
        let e = parse_err(src);
        assert_eq!((e.message.as_str(), e.column), (*message, *column), "{src}");
        assert_eq!(e.line, 1, "{src}");
    }
    assert_eq!(
        parse_err("state.a && ").to_string(),
        "expected a value after '&&' at column 12"
    );
}

#[test]
fn positions_count_lines_and_characters() {
    let e = parse_err("state.a == 1 &&\n  foo");
    assert_eq!((e.line, e.column, e.offset), (2, 3, 18));
    assert!(e.to_string().ends_with("at line 2, column 3"), "{e}");
    // Columns count characters, not bytes.
    let e = parse_err("\"héé\" == #");
    assert_eq!((e.column, e.offset), (10, 11));
    let e = eval_err("\"é\" == \"é\" &&\n   state.nope");
    assert_eq!((e.line, e.column), (2, 10));
}

#[test]
fn the_length_is_capped() {
    let fits = format!("\"{}\"", "a".repeat(MAX_LEN - 2));
    assert_eq!(fits.len(), MAX_LEN);
    assert!(Expr::parse(&fits).is_ok());
    let too_long = format!("\"{}\"", "a".repeat(MAX_LEN - 1));
    let e = parse_err(&too_long);
    assert_eq!(
        e.message,
        "the expression is 4097 bytes long; the limit is 4096"
    );
    assert_eq!(e.column, 1);
}

#[test]
fn the_depth_is_capped() {
    let too_deep = format!("the expression nests deeper than {MAX_DEPTH} levels");
    // Prefix operators: a literal is one level, each `!` one more.
    let ok = format!("{}true", "!".repeat(MAX_DEPTH - 1));
    assert_eq!(eval(&ok), json!(false));
    let e = parse_err(&format!("{}true", "!".repeat(MAX_DEPTH)));
    assert_eq!(e.message, too_deep);
    // Parentheses.
    let parens = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(eval(&parens(MAX_DEPTH - 1)), json!(1));
    let e = parse_err(&parens(MAX_DEPTH));
    assert_eq!(e.message, too_deep);
    assert_eq!(e.column, MAX_DEPTH + 1);
    // A long chain of binary operators nests too.
    let chain = |n: usize| format!("1{}", " + 1".repeat(n));
    assert_eq!(eval(&chain(MAX_DEPTH - 1)), json!(MAX_DEPTH));
    let e = parse_err(&chain(MAX_DEPTH));
    assert_eq!(e.message, too_deep);
    assert_eq!(e.column, 4 * MAX_DEPTH - 1);
    // Calls.
    let calls = |n: usize| format!("{}\"x\"{}", "lower(".repeat(n), ")".repeat(n));
    assert_eq!(eval(&calls(MAX_DEPTH - 1)), json!("x"));
    assert_eq!(parse_err(&calls(MAX_DEPTH)).message, too_deep);
    // The longest input of the deepest kind fails cleanly.
    assert_eq!(parse_err(&"(".repeat(MAX_LEN)).message, too_deep);
    assert_eq!(parse_err(&"-".repeat(MAX_LEN)).message, too_deep);
}

#[test]
fn check_reports_every_unknown_name() {
    let known = Known::new(["name", "count"], ["classify", "fetch-page"]);
    let expr = Expr::parse(
        r#"state.nmae == "x" || exists(state.cout) && nodes.clasify.output.ok && nodes["fetch-page"].output.status == 200 && state.count > 1"#,
    )
    .unwrap();
    let unknown = expr.check(&known);
    let found: Vec<_> = unknown
        .iter()
        .map(|u| (u.kind, u.name.as_str(), u.column))
        .collect();
    assert_eq!(
        found,
        [
            (NameKind::StateKey, "nmae", 7),
            (NameKind::StateKey, "cout", 35),
            (NameKind::Node, "clasify", 50),
        ]
    );
    assert_eq!(
        unknown[0].to_string(),
        r#"unknown state key "nmae" at column 7; declared: name, count"#
    );
    assert_eq!(
        unknown[2].to_string(),
        r#"unknown node "clasify" at column 50; declared: classify, fetch-page"#
    );
    assert_eq!(unknown[0].declared, ["name", "count"]);

    assert!(
        Expr::parse("state.name == \"a\" && nodes.classify.output.x")
            .unwrap()
            .check(&known)
            .is_empty()
    );
    // Only the first step is a declared name; deeper keys belong to values.
    assert!(
        Expr::parse("state.count.anything[3]")
            .unwrap()
            .check(&known)
            .is_empty()
    );
    // A whole-state path names nothing.
    assert!(
        Expr::parse("len(state) > 0")
            .unwrap()
            .check(&known)
            .is_empty()
    );

    let none = Known::default();
    let unknown = Expr::parse("-len(nodes.a) < 1").unwrap().check(&none);
    assert_eq!(
        unknown[0].to_string(),
        r#"unknown node "a" at column 12; declared: none"#
    );
    let unknown = Expr::parse("1 ==\n  state.x").unwrap().check(&none);
    assert_eq!(
        unknown[0].to_string(),
        r#"unknown state key "x" at line 2, column 9; declared: none"#
    );
}

/// A small fixed-seed generator (64-bit LCG), so the test needs no new
/// dependency and fails the same way every time.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % below as u64) as usize
    }
}

#[test]
fn parsing_never_panics_on_arbitrary_input() {
    const PIECES: &[&str] = &[
        "state",
        "nodes",
        ".",
        "[",
        "]",
        "(",
        ")",
        "\"",
        "\\",
        "\\n",
        "a",
        "key",
        "0",
        "1",
        "9",
        ".5",
        "e",
        "E+",
        " ",
        "\n",
        "&&",
        "||",
        "&",
        "|",
        "!",
        "=",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "in",
        "len",
        "exists",
        "lower",
        "upper",
        "-",
        "+",
        "*",
        "/",
        "é",
        "😀",
        "true",
        "false",
        "null",
        "'",
        "#",
        "99999999999999999999999",
        "1e400",
        "\"x\"",
        "[\"a\"]",
    ];
    const VALUES: &[&str] = &[
        "state.a",
        "state.a[1].key",
        "state.key",
        "state.key.a",
        "nodes.a.output",
        "state[\"0\"]",
        "1",
        "2.5",
        "0",
        "\"a\"",
        "\"key\"",
        "true",
        "false",
        "null",
        "len(state.a)",
        "exists(state.b)",
        "lower(\"É\")",
        "!true",
        "-1",
        "(1 + 2)",
        "state.missing",
    ];
    const OPERATORS: &[&str] = &[
        " == ", " != ", " < ", " <= ", " > ", " >= ", " && ", " || ", " in ", " + ", " - ", " * ",
        " / ",
    ];
    let s = json!({"a": [1, {"key": "v"}], "key": {"a": 2}, "0": null});
    let n = json!({"a": {"output": 1}});
    let scope = Scope::new(&s, &n);
    let known = Known::new(["a"], ["a"]);
    let mut rng = Lcg(0x5eed_c0de);
    let (mut parsed, mut rejected) = (0, 0);
    for round in 0..40_000 {
        let len = rng.next(24);
        let text: String = if round % 2 == 0 {
            // Token soup: mostly rejected, exercising the error paths.
            (0..len).map(|_| PIECES[rng.next(PIECES.len())]).collect()
        } else {
            // Values joined by operators, with an occasional stray piece:
            // mostly accepted, exercising the evaluator and the check.
            (0..len)
                .map(|i| match (rng.next(12), i % 2) {
                    (0, _) => PIECES[rng.next(PIECES.len())],
                    (_, 0) => VALUES[rng.next(VALUES.len())],
                    _ => OPERATORS[rng.next(OPERATORS.len())],
                })
                .collect()
        };
        match Expr::parse(&text) {
            Ok(expr) => {
                parsed += 1;
                assert_eq!(expr.source(), text);
                let _ = expr.eval(&scope);
                let _ = expr.truthy(&scope);
                let _ = expr.check(&known);
            }
            Err(e) => {
                rejected += 1;
                assert!(e.offset <= text.len(), "{text:?}: {e}");
                assert!(!e.message.is_empty());
            }
        }
    }
    // The generator reaches both sides, so the loop exercises the evaluator.
    assert!(parsed > 1_000, "only {parsed} parsed");
    assert!(rejected > 1_000, "only {rejected} rejected");
}

/// The error table of `docs/graphs.md` shows what the code says.
#[test]
fn the_documented_errors_are_the_real_ones() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/graphs.md")).unwrap();
    let table = doc
        .split("### Errors")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").find(|block| block.starts_with("| when")))
        .unwrap();
    let (s, n) = (state(), nodes());
    let scope = Scope::new(&s, &n);
    let known = Known::new(["name", "count"], ["classify", "fetch-page"]);
    let mut checked = 0;
    for row in table.lines().skip(2) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let [when, example, message] = cells[..] else {
            panic!("row {row:?}");
        };
        let unquote = |cell: &str| cell.trim_matches('`').trim().to_owned();
        let Some(src) = example.strip_prefix('`').and_then(|e| e.strip_suffix('`')) else {
            continue; // described, not quoted: covered by the cap tests
        };
        let got = match when {
            "parse" => parse_err(src).to_string(),
            "evaluate" => Expr::parse(src)
                .unwrap()
                .eval(&scope)
                .unwrap_err()
                .to_string(),
            "condition" => Expr::parse(src)
                .unwrap()
                .truthy(&scope)
                .unwrap_err()
                .to_string(),
            "check" => Expr::parse(src).unwrap().check(&known)[0].to_string(),
            other => panic!("unknown kind {other}"),
        };
        assert_eq!(got, unquote(message), "{src}");
        checked += 1;
    }
    assert!(checked >= 14, "only {checked} rows checked");
}
