//! Rules of the configMap, secret, downwardAPI and projected volumes:
//! object names, item keys and paths, file modes, downward API fields.

use super::Errors;
use super::container::{object_name, resource_field_ref};
use crate::spec::objects::config_key;
use crate::spec::refs::{check_volume_field_path, local_descending_path};
use crate::spec::types::{DownwardApiFile, KeyToPath, Pod, Volume};
use crate::vecmap::VecSet;

/// `mode`/`defaultMode`: 0 to 0777 (decimal 511), as Kubernetes checks.
fn mode(m: Option<i32>, path: String, errs: &mut Errors) {
    if let Some(m) = m {
        if !(0..=0o777).contains(&m) {
            errs.add(
                path,
                format!("{m} must be a number between 0 and 0777 (octal), both inclusive"),
            );
        }
    }
}

fn items(list: &[KeyToPath], path: &str, errs: &mut Errors) {
    for (i, it) in list.iter().enumerate() {
        let p = format!("{path}.items[{i}]");
        errs.check(format!("{p}.key"), config_key(&it.key));
        errs.check(format!("{p}.path"), local_descending_path(&it.path));
        mode(it.mode, format!("{p}.mode"), errs);
    }
}

fn downward(pod: &Pod, list: &[DownwardApiFile], path: &str, errs: &mut Errors) {
    for (i, f) in list.iter().enumerate() {
        let p = format!("{path}.items[{i}]");
        errs.check(format!("{p}.path"), local_descending_path(&f.path));
        mode(f.mode, format!("{p}.mode"), errs);
        match (&f.field_ref, &f.resource_field_ref) {
            (Some(fr), None) => {
                errs.check(
                    format!("{p}.fieldRef.fieldPath"),
                    check_volume_field_path(&fr.field_path),
                );
            }
            (None, Some(rf)) => {
                resource_field_ref(pod, None, rf, &format!("{p}.resourceFieldRef"), errs)
            }
            _ => errs.add(
                &p,
                "must specify exactly one of: `fieldRef` or `resourceFieldRef`",
            ),
        }
    }
}

/// The rules of one volume of these kinds (none for the others).
pub(super) fn volume(pod: &Pod, v: &Volume, path: &str, errs: &mut Errors) {
    if let Some(cm) = &v.config_map {
        let p = format!("{path}.configMap");
        errs.check(format!("{p}.name"), object_name(&cm.name));
        items(&cm.items, &p, errs);
        mode(cm.default_mode, format!("{p}.defaultMode"), errs);
    }
    if let Some(s) = &v.secret {
        let p = format!("{path}.secret");
        errs.check(format!("{p}.secretName"), object_name(&s.secret_name));
        items(&s.items, &p, errs);
        mode(s.default_mode, format!("{p}.defaultMode"), errs);
    }
    if let Some(d) = &v.downward_api {
        let p = format!("{path}.downwardAPI");
        downward(pod, &d.items, &p, errs);
        mode(d.default_mode, format!("{p}.defaultMode"), errs);
    }
    if let Some(pr) = &v.projected {
        let p = format!("{path}.projected");
        mode(pr.default_mode, format!("{p}.defaultMode"), errs);
        let mut paths = VecSet::new();
        for (i, src) in pr.sources.iter().enumerate() {
            let sp = format!("{p}.sources[{i}]");
            let n = [
                src.config_map.is_some(),
                src.secret.is_some(),
                src.downward_api.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                errs.add(
                    &sp,
                    "must specify exactly one of: `configMap`, `secret` or `downwardAPI`",
                );
            }
            for (field, o) in [("configMap", &src.config_map), ("secret", &src.secret)] {
                let Some(o) = o else { continue };
                let op = format!("{sp}.{field}");
                errs.check(format!("{op}.name"), object_name(&o.name));
                items(&o.items, &op, errs);
                for it in &o.items {
                    if !paths.insert(it.path.clone()) {
                        errs.add(
                            format!("{op}.items"),
                            format!("conflicting duplicate paths {:?}", it.path),
                        );
                    }
                }
            }
            if let Some(d) = &src.downward_api {
                let dp = format!("{sp}.downwardAPI");
                downward(pod, &d.items, &dp, errs);
                for f in &d.items {
                    if !paths.insert(f.path.clone()) {
                        errs.add(
                            format!("{dp}.items"),
                            format!("conflicting duplicate paths {:?}", f.path),
                        );
                    }
                }
            }
        }
    }
}
