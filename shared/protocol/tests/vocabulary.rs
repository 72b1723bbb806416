//! The vocabulary: factor names (one spelling written everywhere, the old spellings still
//! read) and decision names (one type from the fusion to the phone).

use tacit_shared::payload::{FactorKind, UnknownFactor};

#[test]
fn every_factor_has_one_name_that_round_trips() {
    for kind in FactorKind::ALL {
        let name = kind.to_string();
        assert_eq!(name, kind.name());
        assert_eq!(name.parse::<FactorKind>(), Ok(kind));
        assert_eq!(FactorKind::from_tag(kind as u8), Some(kind));
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<FactorKind>(&json).unwrap(), kind);
        // A DNS label (Kubernetes object names, hosts, URL paths without escaping).
        assert!(
            name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-'),
            "{name}"
        );
    }
    let names: Vec<&str> = FactorKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names, ["gait", "keystroke-fixed", "keystroke-free", "face"]);
}

#[test]
fn old_spellings_are_read_and_never_written() {
    for (old, kind) in [
        ("keystroke_fixed", FactorKind::KeystrokeFixed),
        ("keystroke", FactorKind::KeystrokeFixed),
        ("keystroke_free", FactorKind::KeystrokeFree),
    ] {
        assert_eq!(old.parse::<FactorKind>(), Ok(kind), "{old}");
        let read: FactorKind = serde_json::from_str(&format!("\"{old}\"")).unwrap();
        assert_eq!(read, kind);
        assert_ne!(kind.to_string(), old);
        assert_ne!(serde_json::to_string(&read).unwrap(), format!("\"{old}\""));
    }
}

#[test]
fn unknown_names_are_refused_with_the_expected_ones() {
    for bad in [
        "",
        "Gait",
        "faces",
        "keystroke-",
        "gait ",
        "keystroke-fixed\0",
    ] {
        let err = bad.parse::<FactorKind>().unwrap_err();
        assert_eq!(err, UnknownFactor(bad.to_string()));
        assert!(
            err.to_string()
                .contains("expected gait, keystroke-fixed, keystroke-free or face")
        );
        assert!(serde_json::from_str::<FactorKind>(&serde_json::to_string(bad).unwrap()).is_err());
    }
    assert!(
        serde_json::from_str::<FactorKind>("2").is_err(),
        "tags are not names"
    );
}

#[test]
fn decision_names_are_their_json() {
    use tacit_shared::api::AuthDecision;
    for d in [
        AuthDecision::Accept,
        AuthDecision::StepUp,
        AuthDecision::Reject,
    ] {
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!("\"{}\"", d.name())
        );
    }
}
