use crate::spec::{Quantity, QuantityFormat};

fn value(s: &str) -> i64 {
    Quantity::parse(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .value()
}

fn milli(s: &str) -> i64 {
    Quantity::parse(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .milli_value()
}

#[test]
fn cpu_quantities_give_kubernetes_milli_values() {
    let table = [
        ("250m", 250),
        ("0.5", 500),
        (".5", 500),
        ("1", 1000),
        ("2", 2000),
        ("1.5", 1500),
        ("100m", 100),
        ("0.1", 100),
        ("1000m", 1000),
        ("0", 0),
        ("0m", 0),
        ("1.", 1000),
        ("+1", 1000),
        ("-1", -1000),
        ("1k", 1_000_000),
        ("1e3", 1_000_000),
        ("1E3", 1_000_000),
        ("1e-3", 1),
        ("1e+3", 1_000_000),
        ("5e-1", 500),
        ("100u", 1),
        ("1n", 1),
        ("1000000n", 1),
        ("1000001n", 2),
        ("0.0001", 1),
        ("0.0015", 2),
        ("1Ki", 1_024_000),
        ("007", 7000),
        ("0.000", 0),
    ];
    for (s, want) in table {
        assert_eq!(milli(s), want, "milli_value({s})");
    }
}

#[test]
fn memory_quantities_give_bytes() {
    let table = [
        ("128Mi", 134_217_728),
        ("1Ki", 1024),
        ("1Mi", 1_048_576),
        ("1Gi", 1_073_741_824),
        ("1Ti", 1_099_511_627_776),
        ("1Pi", 1_125_899_906_842_624),
        ("1Ei", 1_152_921_504_606_846_976),
        ("7Ei", 8_070_450_532_247_928_832),
        ("1.5Gi", 1_610_612_736),
        ("0.5Ki", 512),
        ("1G", 1_000_000_000),
        ("1M", 1_000_000),
        ("1k", 1000),
        ("1T", 1_000_000_000_000),
        ("1P", 1_000_000_000_000_000),
        ("1E", 1_000_000_000_000_000_000),
        ("129e6", 129_000_000),
        ("12e6", 12_000_000),
        ("128974848", 128_974_848),
        ("9223372036854775807", i64::MAX),
        ("1.G", 1_000_000_000),
        ("0.1", 1),
        ("1m", 1),
        ("1500m", 2),
        ("1e-1000000", 1),
        ("1.0000000000000000000000000000000000000000001", 2),
        ("0.3Ki", 308),
    ];
    for (s, want) in table {
        assert_eq!(value(s), want, "value({s})");
    }
}

#[test]
fn negative_quantities_round_away_from_zero() {
    assert_eq!(value("-1.5"), -2);
    assert_eq!(milli("-0.0001"), -1);
    let q = Quantity::parse("-5Mi").unwrap();
    assert!(q.is_negative());
    assert_eq!(q.value(), -5 * 1_048_576);
    assert!(!Quantity::parse("-0").unwrap().is_negative());
}

#[test]
fn garbage_quantities_are_refused() {
    let bad = [
        "",
        " ",
        " 1",
        "1 ",
        "1.2.3",
        "Mi",
        ".",
        "+",
        "-",
        "-.",
        "12Q",
        "1K",
        "1mi",
        "0.1mi",
        "0.1am",
        "aoeu",
        ".5i",
        "1i",
        "-3.01i",
        "-3.01e-",
        "1e",
        "1E+",
        "1e1.5",
        "1e3x",
        "1Ee3",
        "1Mi2",
        "1,5",
        "0x10",
        "1_000",
        "१",
        "1e99999999999999999999",
    ];
    for s in bad {
        assert!(Quantity::parse(s).is_err(), "{s:?} should be refused");
    }
}

#[test]
fn quantities_too_large_for_i64_are_refused() {
    for s in [
        "9223372036854775808",
        "8Ei",
        "10E",
        "1e19",
        "1e40",
        "1e999999",
        "99999999999999999999999999999999999999999",
        "100000000000000000000000000000000000000000Ei",
    ] {
        let e = Quantity::parse(s).expect_err(s);
        assert!(e.message.contains("too large"), "{s}: {e}");
    }
}

#[test]
fn quantity_error_names_the_text_and_the_suffix() {
    let e = Quantity::parse("12Q").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"invalid quantity "12Q": unknown suffix "Q""#
    );
    assert_eq!(e.path, "");
}

#[test]
fn quantities_compare_by_value_not_by_format() {
    let p = |s: &str| Quantity::parse(s).unwrap();
    assert_eq!(p("1Ki"), p("1Ki"));
    assert!(p("1Ki").cmp(&p("1024")).is_eq());
    assert!(p("500m") < p("1"));
    assert!(p("1Gi") > p("1G"));
    assert!(p("-1") < p("0"));
    assert_eq!(p("1Ki").nano_value(), 1024 * 1_000_000_000);
}

#[test]
fn quantity_format_follows_the_suffix() {
    let f = |s: &str| Quantity::parse(s).unwrap().format();
    assert_eq!(f("1"), QuantityFormat::DecimalSi);
    assert_eq!(f("1m"), QuantityFormat::DecimalSi);
    assert_eq!(f("1Mi"), QuantityFormat::BinarySi);
    assert_eq!(f("1e3"), QuantityFormat::DecimalExponent);
}

#[test]
fn milli_value_saturates_instead_of_wrapping() {
    assert_eq!(milli("9223372036854775807"), i64::MAX);
    assert_eq!(milli("-9223372036854775807"), -i64::MAX);
}

#[test]
fn parsed_reads_the_stored_string() {
    let q = Quantity("250m".to_string());
    assert_eq!(q.parsed().unwrap().milli_value(), 250);
    assert!(Quantity("x".to_string()).parsed().is_err());
}
