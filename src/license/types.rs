//! License types (证照类型): built-ins and types registered as data, each with a JSON Schema of
//! its face fields.

use crate::error::{Error, FieldError, Result};
use crate::store::TypeRow;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who holds licenses of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HolderKind {
    Person,
    Organisation,
    Any,
}

impl HolderKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            HolderKind::Person => "person",
            HolderKind::Organisation => "organisation",
            HolderKind::Any => "any",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "person" => Some(HolderKind::Person),
            "organisation" => Some(HolderKind::Organisation),
            "any" => Some(HolderKind::Any),
            _ => None,
        }
    }
}

/// A type definition as registered through the API or CLI.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TypeDefinition {
    /// 21 characters: the defining authority's credit code and 3 digits.
    pub code: String,
    pub name: String,
    pub holder_kind: HolderKind,
    /// JSON Schema (draft 2020-12) of the face fields; must describe an object.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// Default validity in years from `valid_from`; absent means long-term (长期).
    #[serde(default)]
    pub validity_years: Option<u16>,
    /// Fields a holder may choose to disclose in a show code (the default choice).
    #[serde(default)]
    pub disclosable: Vec<String>,
    /// Fields every show code discloses (`holder_name`, `holder_code` name the holder).
    #[serde(default)]
    pub disclose_minimum: Vec<String>,
}

/// A registered type with its compiled schema.
pub struct LicenseType {
    pub def: TypeDefinition,
    pub builtin: bool,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for LicenseType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LicenseType({})", self.def.code)
    }
}

impl LicenseType {
    /// Checks a definition and compiles its schema.
    pub fn compile(def: TypeDefinition, builtin: bool) -> Result<Self> {
        let (credit, digits) = def.code.split_at_checked(18).unwrap_or((&def.code, ""));
        if def.code.len() != 21 || digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Error::InvalidType {
                reason: "code must be 21 characters: a credit code and 3 digits".into(),
            });
        }
        super::credit_code::validate(credit).map_err(|e| Error::InvalidType {
            reason: format!("code: the credit-code part is invalid: {e}"),
        })?;
        if def.name.trim().is_empty() || def.name.chars().count() > 100 {
            return Err(Error::InvalidType {
                reason: "name must be 1 to 100 characters".into(),
            });
        }
        if def.schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err(Error::InvalidType {
                reason: "schema must describe an object (\"type\": \"object\")".into(),
            });
        }
        let validator = jsonschema::validator_for(&def.schema).map_err(|e| Error::InvalidType {
            reason: format!("schema is not a valid JSON Schema: {e}"),
        })?;
        let props = def.schema.get("properties").and_then(Value::as_object);
        for f in def.disclosable.iter().chain(&def.disclose_minimum) {
            let holder_field = f == "holder_name" || f == "holder_code";
            if !holder_field && !props.is_some_and(|p| p.contains_key(f)) {
                return Err(Error::InvalidType {
                    reason: format!("disclosable field {f:?} is not a property of the schema"),
                });
            }
        }
        Ok(LicenseType {
            def,
            builtin,
            validator,
        })
    }

    pub fn from_row(row: &TypeRow) -> Result<Self> {
        let schema = serde_json::from_str(&row.schema)
            .map_err(|e| Error::internal(format!("stored schema of {}: {e}", row.code)))?;
        let disclosable = serde_json::from_str(&row.disclosable)
            .map_err(|e| Error::internal(format!("stored disclosable of {}: {e}", row.code)))?;
        let disclose_minimum = serde_json::from_str(&row.disclose_minimum)
            .map_err(|e| Error::internal(format!("stored disclosure of {}: {e}", row.code)))?;
        let holder_kind = HolderKind::parse(&row.holder_kind)
            .ok_or_else(|| Error::internal(format!("stored holder kind of {}", row.code)))?;
        Self::compile(
            TypeDefinition {
                code: row.code.clone(),
                name: row.name.clone(),
                holder_kind,
                schema,
                validity_years: row.validity_years.and_then(|y| u16::try_from(y).ok()),
                disclosable,
                disclose_minimum,
            },
            row.builtin != 0,
        )
    }

    pub fn to_row(&self, now: i64) -> TypeRow {
        TypeRow {
            code: self.def.code.clone(),
            name: self.def.name.clone(),
            holder_kind: self.def.holder_kind.as_str().to_string(),
            schema: self.def.schema.to_string(),
            validity_years: self.def.validity_years.map(i64::from),
            disclosable: serde_json::to_string(&self.def.disclosable)
                .unwrap_or_else(|_| "[]".into()),
            disclose_minimum: serde_json::to_string(&self.def.disclose_minimum)
                .unwrap_or_else(|_| "[]".into()),
            builtin: i64::from(self.builtin),
            created_at: now,
        }
    }

    /// Validates face fields; every error names its path under `/fields`.
    pub fn validate_fields(&self, fields: &Value) -> Vec<FieldError> {
        // The usual case first: `is_valid` stops at nothing and builds no error values, where
        // `iter_errors` sets up its error iterators even for a valid instance.
        if self.validator.is_valid(fields) {
            return Vec::new();
        }
        self.validator
            .iter_errors(fields)
            .map(|e| {
                let path = e.instance_path().to_string();
                FieldError::new(format!("/fields{path}"), e.to_string())
            })
            .collect()
    }
}

/// The built-in types of every region.
pub fn builtins() -> Vec<TypeDefinition> {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    vec![
        TypeDefinition {
            code: RESIDENT_ID_CARD.into(),
            name: "居民身份证".into(),
            holder_kind: HolderKind::Person,
            schema: parse(include_str!("builtin/resident_id_card.json")),
            validity_years: Some(20),
            disclosable: vec!["sex".into(), "birth_date".into()],
            disclose_minimum: vec!["holder_name".into()],
        },
        TypeDefinition {
            code: DRIVING_LICENCE.into(),
            name: "机动车驾驶证".into(),
            holder_kind: HolderKind::Person,
            schema: parse(include_str!("builtin/driving_licence.json")),
            validity_years: Some(6),
            disclosable: vec!["vehicle_class".into(), "first_issue_date".into()],
            disclose_minimum: vec!["holder_name".into(), "vehicle_class".into()],
        },
        TypeDefinition {
            code: VEHICLE_LICENCE.into(),
            name: "机动车行驶证".into(),
            holder_kind: HolderKind::Any,
            schema: parse(include_str!("builtin/vehicle_licence.json")),
            validity_years: None,
            disclosable: vec![
                "plate_number".into(),
                "vehicle_type".into(),
                "use_character".into(),
            ],
            disclose_minimum: vec!["plate_number".into()],
        },
        TypeDefinition {
            code: RESIDENCE_PERMIT.into(),
            name: "居住证".into(),
            holder_kind: HolderKind::Person,
            schema: parse(include_str!("builtin/residence_permit.json")),
            validity_years: Some(1),
            disclosable: vec!["residence_address".into()],
            disclose_minimum: vec!["holder_name".into()],
        },
    ]
}

/// Built-in type codes, defined by the Ministry of Public Security (11100000000013338W).
pub const RESIDENT_ID_CARD: &str = "11100000000013338W001";
pub const DRIVING_LICENCE: &str = "11100000000013338W002";
pub const VEHICLE_LICENCE: &str = "11100000000013338W003";
pub const RESIDENCE_PERMIT: &str = "11100000000013338W004";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_compile() {
        for def in builtins() {
            let code = def.code.clone();
            assert!(LicenseType::compile(def, true).is_ok(), "{code}");
        }
    }

    #[test]
    fn field_errors_name_their_path() {
        let t = LicenseType::compile(builtins().remove(0), true).expect("compiles");
        let errs = t.validate_fields(&serde_json::json!({
            "sex": "x", "ethnicity": "汉", "birth_date": "1990-01-01", "address": "合肥",
            "issuing_office": "公安局", "extra": 1
        }));
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"/fields/sex"), "{paths:?}");
        assert!(paths.contains(&"/fields"), "{paths:?}");
    }

    #[test]
    fn bad_definitions_are_refused() {
        let mut def = builtins().remove(0);
        def.code = "11100000000013338X001".into();
        assert!(matches!(
            LicenseType::compile(def, false),
            Err(Error::InvalidType { .. })
        ));
        let mut def = builtins().remove(0);
        def.schema = serde_json::json!({"type": "object", "properties": {"a": {"type": 5}}});
        assert!(matches!(
            LicenseType::compile(def, false),
            Err(Error::InvalidType { .. })
        ));
    }
}
