use super::*;

fn ok(text: &str) -> Node {
    parse(text).unwrap_or_else(|e| panic!("unexpected errors: {e:?}"))
}

fn errs(text: &str) -> Vec<Error> {
    parse(text).expect_err("expected errors")
}

#[test]
fn keeps_one_based_positions_of_keys_and_values() {
    let root = ok("a: 1\nlist:\n  - x: hello\n");
    let a = root.get("a").unwrap();
    assert_eq!(a.key.pos, Pos { line: 1, column: 1 });
    assert_eq!(a.value.pos, Pos { line: 1, column: 4 });
    let item = &root.get("list").unwrap().value.as_seq().unwrap()[0];
    let x = item.get("x").unwrap();
    assert_eq!(x.key.pos, Pos { line: 3, column: 5 });
    assert_eq!(x.value.pos, Pos { line: 3, column: 8 });
    assert_eq!(x.value.as_text(), Some("hello"));
}

#[test]
fn duplicate_keys_are_errors_naming_both_places() {
    let errors = errs("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n");
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0].pos, Pos { line: 4, column: 3 });
    assert_eq!(errors[0].path, "b.c");
    assert!(
        errors[0].message.contains("first written at 3:3"),
        "{}",
        errors[0]
    );
    assert_eq!(errors[1].pos, Pos { line: 5, column: 1 });
    assert!(
        errors[1]
            .to_string()
            .starts_with("5:1: a: duplicate key 'a'")
    );
}

#[test]
fn syntax_error_has_line_and_column() {
    let errors = errs("a: 1\nb: [1, 2\nc: 3\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.starts_with("YAML syntax error"),
        "{}",
        errors[0]
    );
    assert!(errors[0].pos.line >= 2, "{}", errors[0]);
    let errors = errs("a:\n  b: 1\n c: 2\n");
    assert_eq!(errors[0].pos.line, 3, "{}", errors[0]);
}

#[test]
fn tags_are_kept() {
    let root = ok("ports: !reset []\nimage: !override x\n");
    assert_eq!(
        root.get("ports").unwrap().value.tag.as_deref(),
        Some("!reset")
    );
    assert_eq!(
        root.get("image").unwrap().value.tag.as_deref(),
        Some("!override")
    );
}

#[test]
fn aliases_and_merge_keys_mapping_and_list_forms() {
    let text = "base: &b\n  x: 1\n  y: 2\nother: &o\n  y: 20\n  z: 30\none:\n  <<: *b\n  x: 10\nmany:\n  <<: [*o, *b]\nlist: *b\n";
    let root = ok(text);
    let one = &root.get("one").unwrap().value;
    assert_eq!(one.get("x").unwrap().value.as_text(), Some("10"));
    assert!(!one.get("x").unwrap().merged);
    assert_eq!(one.get("y").unwrap().value.as_text(), Some("2"));
    assert!(one.get("y").unwrap().merged);
    let many = &root.get("many").unwrap().value;
    assert_eq!(many.get("y").unwrap().value.as_text(), Some("20"));
    assert_eq!(many.get("x").unwrap().value.as_text(), Some("1"));
    assert_eq!(many.get("z").unwrap().value.as_text(), Some("30"));
    assert_eq!(
        root.get("list")
            .unwrap()
            .value
            .get("x")
            .unwrap()
            .value
            .as_text(),
        Some("1")
    );
    assert!(one.get("<<").is_none());
}

#[test]
fn merge_of_a_scalar_is_an_error() {
    let errors = errs("a: &a 1\nb:\n  <<: *a\n");
    assert!(errors[0].message.contains("merge key"), "{}", errors[0]);
}

#[test]
fn crlf_text_parses_with_the_same_positions() {
    let root = ok("a: 1\r\nb:\r\n  - c\r\n");
    assert_eq!(root.get("b").unwrap().key.pos, Pos { line: 2, column: 1 });
    let item = &root.get("b").unwrap().value.as_seq().unwrap()[0];
    assert_eq!(item.pos, Pos { line: 3, column: 5 });
    assert_eq!(item.as_text(), Some("c"));
}

#[test]
fn resolves_core_schema_scalars() {
    let root = ok("f: 0.0\nq: \"0.0\"\ni: 0755\nn:\nb: true\ns: linux\nt: ~\n");
    let r = |k: &str| root.get(k).unwrap().value.resolve().unwrap();
    assert_eq!(r("f"), Resolved::Float(0.0));
    assert_eq!(r("q"), Resolved::Str("0.0"));
    assert_eq!(r("i"), Resolved::Int(755));
    assert_eq!(r("n"), Resolved::Null);
    assert_eq!(r("b"), Resolved::Bool(true));
    assert_eq!(r("s"), Resolved::Str("linux"));
    assert_eq!(r("t"), Resolved::Null);
}

#[test]
fn empty_document_is_null_and_two_documents_are_refused() {
    assert!(ok("").is_null());
    assert!(ok("# only a comment\n").is_null());
    let errors = errs("a: 1\n---\nb: 2\n");
    assert!(errors[0].message.contains("second YAML document"));
}

#[test]
fn alias_bombs_are_stopped() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    let errors = errs(&text);
    assert!(
        errors[0].message.contains("aliases expand to more than"),
        "{}",
        errors[0]
    );
}
