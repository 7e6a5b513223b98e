//! Demo data: a region (340600) with three authorities and a few hundred licenses, and the
//! generator of synthetic license requests that tests and benchmarks share.

use crate::app::App;
use crate::error::Result;
use crate::license::credit_code;
use crate::license::holder::{Holder, resident_id_check};
use crate::license::import::{ImportOptions, import_file};
use crate::license::types::{DRIVING_LICENCE, RESIDENCE_PERMIT, RESIDENT_ID_CARD, VEHICLE_LICENCE};
use serde_json::json;

/// The demo region's division code.
pub const REGION: &str = "340600";

/// A deterministic pseudo-random sequence (xorshift64*), so demo data is the same every time.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items
            .get(self.below(items.len() as u64) as usize)
            .copied()
            .unwrap_or("")
    }
}

/// A credit code with a valid check character from a 17-character body.
pub fn credit(body17: &str) -> String {
    format!("{body17}{}", credit_code::check_char(body17).unwrap_or('0'))
}

/// The demo authorities: (credit code, name, types).
pub fn authorities() -> Vec<(String, &'static str, Vec<String>)> {
    vec![
        (
            credit("11340600MB0000011"),
            "示范市公安局",
            vec![RESIDENT_ID_CARD.into(), RESIDENCE_PERMIT.into()],
        ),
        (
            credit("11340600MB0000021"),
            "示范市公安局交通警察支队",
            vec![DRIVING_LICENCE.into()],
        ),
        (
            credit("11340600MB0000031"),
            "示范市公安局车辆管理所",
            vec![VEHICLE_LICENCE.into()],
        ),
    ]
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "华", "慧",
];
const STREETS: &[&str] = &[
    "人民路",
    "淮海路",
    "孟山路",
    "南黎路",
    "长山路",
    "相山路",
    "古城路",
    "惠黎路",
];

/// A synthetic resident identity number with a valid check character.
pub fn resident_id(rng: &mut Rng, seq: u64) -> (String, String, &'static str) {
    let year = 1950 + rng.below(55);
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    let order = seq % 1000;
    let body = format!("340602{year:04}{month:02}{day:02}{order:03}");
    let id = format!("{body}{}", resident_id_check(&body).unwrap_or('0'));
    let sex = if order % 2 == 1 { "男" } else { "女" };
    (id, format!("{year:04}-{month:02}-{day:02}"), sex)
}

/// The `n`-th synthetic license request of a given type (numbers are unique per `seq`).
pub fn request(rng: &mut Rng, type_code: &str, issuer: &str, seq: u64) -> serde_json::Value {
    let (code, birth, sex) = resident_id(rng, seq);
    let name = format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN));
    let address = format!("安徽省示范市{}{}号", rng.pick(STREETS), 1 + rng.below(300));
    let holder = Holder {
        name,
        code: code.clone(),
        code_type: "111".into(),
    };
    let issue_year = 2018 + rng.below(8);
    let issue_date = format!(
        "{issue_year}-{:02}-{:02}",
        1 + rng.below(12),
        1 + rng.below(28)
    );
    let (number, fields) = match type_code {
        RESIDENT_ID_CARD => (
            format!("ID{seq:010}"),
            json!({"sex": sex, "ethnicity": "汉", "birth_date": birth, "address": address, "issuing_office": "示范市公安局相山分局"}),
        ),
        DRIVING_LICENCE => (
            format!("DL{seq:010}"),
            json!({"sex": sex, "nationality": "中国", "birth_date": birth, "address": address,
                   "first_issue_date": issue_date, "vehicle_class": rng.pick(&["C1", "C2", "B2", "A2C1"]),
                   "archive_number": format!("3406{:08}", seq % 100_000_000)}),
        ),
        VEHICLE_LICENCE => (
            format!("VL{seq:010}"),
            json!({"plate_number": format!("皖F{}{:04}", rng.pick(&["A", "B", "C", "D"]), seq % 10_000),
                   "vehicle_type": "小型普通客车", "address": address, "use_character": "非营运",
                   "model": rng.pick(&["比亚迪牌BYD7152", "大众牌SVW7157", "吉利牌MR7152"]),
                   "vin": format!("LGBH52E0{:09}", seq % 1_000_000_000), "engine_number": format!("E{seq:08}"),
                   "register_date": issue_date}),
        ),
        _ => (
            format!("RP{seq:010}"),
            json!({"sex": sex, "ethnicity": "汉", "birth_date": birth, "residence_address": address,
                   "household_address": "安徽省合肥市蜀山区"}),
        ),
    };
    json!({
        "type": type_code, "issuer": issuer, "number": number, "holder": holder,
        "issue_date": issue_date, "fields": fields
    })
}

/// Creates the demo region, authorities and licenses where absent; prints where to look.
pub async fn ensure(app: &App) -> Result<()> {
    if app.store.region().await?.is_none() {
        app.pki.init_region(REGION, "示范市 Demo City").await?;
        crate::cli::write_admin_token(app)
            .await
            .map_err(|e| crate::error::Error::internal(e.to_string()))?;
    }
    let auths = authorities();
    for (code, name, types) in &auths {
        if app.store.authority(code).await?.is_none() {
            app.licenses
                .add_authority(code, name, "municipal", types)
                .await?;
        }
    }
    // A license seal (证照专用章) per authority, for sealed e-license PDFs.
    for (code, name, _) in &auths {
        let has = app
            .store
            .seals(Some(code))
            .await?
            .iter()
            .any(|s| s.kind == "license");
        if !has {
            crate::seal::add(
                app,
                crate::seal::NewSeal {
                    owner: code.clone(),
                    kind: "license".into(),
                    name: format!("{name} 证照专用章"),
                    organisation: Some(name.to_string()),
                    image: None,
                },
            )
            .await?;
        }
    }
    if app.store.count_licenses().await? == 0 {
        let path = app.config.data_dir.join("demo-licenses.jsonl");
        let mut rng = Rng::new(340600);
        let mut lines = String::new();
        let plan = [
            (RESIDENT_ID_CARD, 0usize, 160u64),
            (RESIDENCE_PERMIT, 0, 40),
            (DRIVING_LICENCE, 1, 80),
            (VEHICLE_LICENCE, 2, 60),
        ];
        let mut seq = 1u64;
        for (t, a, n) in plan {
            let issuer = auths.get(a).map(|x| x.0.clone()).unwrap_or_default();
            for _ in 0..n {
                lines.push_str(&request(&mut rng, t, &issuer, seq).to_string());
                lines.push('\n');
                seq += 1;
            }
        }
        std::fs::write(&path, lines).map_err(|e| crate::error::Error::internal(e.to_string()))?;
        let opts = ImportOptions {
            actor: "demo".into(),
            ..Default::default()
        };
        let s = import_file(&app.licenses, &path, &opts, &mut ()).await?;
        tracing::info!(issued = s.issued, "demo licenses issued");
    }
    let url = &app.config.public_url;
    let token_file = app.config.data_dir.join("admin.token");
    println!(
        "demo region {REGION} ready ({} licenses)",
        app.store.count_licenses().await?
    );
    println!("  API:        {url}  (OpenAPI: {url}/openapi.json)");
    println!(
        "  token:      {}  (send as Authorization: Bearer ...)",
        token_file.display()
    );
    println!(
        "  seals:      curl -H \"Authorization: Bearer $(cat {})\" {url}/v1/seals  (seal a PDF: POST {url}/v1/seals/ID/sign)",
        token_file.display()
    );
    println!(
        "  try:        curl -H \"Authorization: Bearer $(cat {})\" '{url}/v1/licenses?limit=2'",
        token_file.display()
    );
    Ok(())
}
