//! The township registry: the county's townships from the official division
//! table (`schemas/divisions/`), their place in the hierarchy, and the
//! resolution of township names as reports write them.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::fold::fold;

/// One township with its hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Township {
    /// 9-digit code.
    pub code: String,
    /// Official name.
    pub name: String,
    /// 6-digit county code.
    pub county: String,
    /// County name.
    pub county_name: String,
    /// 4-digit city code.
    pub city: String,
    /// City name.
    pub city_name: String,
    /// 2-digit province code.
    pub province: String,
    /// Province name.
    pub province_name: String,
    /// Resident population, when the county gave it (`[population]` in
    /// registry.toml): the default ceiling for counts of people and households.
    pub population: Option<u64>,
}

/// A historical or colloquial name for a township.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    /// The name as reports write it.
    pub name: String,
    /// 9-digit code it stands for now.
    pub township: String,
    /// Date the name stopped being official, informational.
    #[serde(default)]
    pub until: Option<String>,
}

/// `config/registry.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// 6-digit county codes this deployment covers.
    pub counties: Vec<String>,
    /// Extra names for townships.
    #[serde(default)]
    pub aliases: Vec<Alias>,
    /// Resident population by 9-digit township code.
    #[serde(default)]
    pub population: BTreeMap<String, u64>,
}

/// The official division table, as CSV texts.
pub struct Divisions<'a> {
    /// provinces.csv
    pub provinces: &'a str,
    /// cities.csv
    pub cities: &'a str,
    /// areas.csv
    pub areas: &'a str,
    /// streets.csv
    pub streets: &'a str,
}

impl Divisions<'static> {
    /// The 2023 edition compiled into the binary.
    pub fn embedded() -> Divisions<'static> {
        Divisions {
            provinces: include_str!("../../../schemas/divisions/provinces.csv"),
            cities: include_str!("../../../schemas/divisions/cities.csv"),
            areas: include_str!("../../../schemas/divisions/areas.csv"),
            streets: include_str!("../../../schemas/divisions/streets.csv"),
        }
    }
}

/// A registry that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// registry.toml does not parse.
    #[error("{file}: {source}")]
    Parse {
        /// The file.
        file: String,
        /// Parser message with line and key.
        source: Box<toml::de::Error>,
    },
    /// A county or alias names a code the division table does not have.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// The key at fault.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// How a township name resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// Exactly one township.
    Found(String),
    /// No township of the registry has this name.
    Unknown,
    /// Several townships could be meant.
    Ambiguous(Vec<String>),
}

/// The county's townships.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Townships by code, in code order.
    pub townships: BTreeMap<String, Township>,
    /// The whole registry's codes by folded name and stem, shared by its
    /// parts (each reads only the codes of its own townships).
    names: std::sync::Arc<Names>,
}

/// The names a registry resolves: every township's and alias's, made into
/// codes by folded name and stem the first time a name is resolved (most
/// runs resolve none, their reports naming townships by code: a national
/// registry's ~80,000 keys were ~60 ms of every run).
#[derive(Debug)]
struct Names {
    /// (name, code) of every township in code order, then every alias.
    written: Vec<(String, String)>,
    by_key: std::sync::OnceLock<HashMap<String, Vec<String>>>,
}

impl Names {
    /// Codes by folded name and by stem, in the order written.
    fn by_key(&self) -> &HashMap<String, Vec<String>> {
        self.by_key.get_or_init(|| {
            let mut names: HashMap<String, Vec<String>> = HashMap::new();
            for (name, code) in &self.written {
                let folded = fold(name);
                let stemmed = stem(&folded);
                for key in [folded, stemmed] {
                    let v = names.entry(key).or_default();
                    if !v.iter().any(|c| c == code) {
                        v.push(code.clone());
                    }
                }
            }
            names
        })
    }
}

/// Suffixes a report may leave off a township's name; longest first.
const SUFFIXES: &[&str] = &["街道办事处", "街道", "镇", "乡", "办事处"];

/// Strips the administrative suffix and ethnic qualifier: 九保阿昌族乡 → 九保.
fn stem(name: &str) -> String {
    let mut s = name.to_string();
    for suf in SUFFIXES {
        if let Some(rest) = s.strip_suffix(suf)
            && rest.chars().count() >= 2
        {
            s = rest.to_string();
            break;
        }
    }
    // Ethnic qualifiers end in 族 (阿昌族, 回族, 彝族): drop from the first
    // ethnic name on; names are short, so a scan is cheap.
    if let Some(pos) = s.find('族') {
        let head: String = s[..pos].chars().collect();
        let n = head.chars().count();
        // keep at least two characters of the place name
        for cut in 2..n {
            let candidate: String = head.chars().take(cut).collect();
            if ETHNIC_PREFIXES.iter().any(|e| head[candidate.len()..].starts_with(e)) {
                return candidate;
            }
        }
    }
    s
}

/// First characters of ethnic group names used in township names.
const ETHNIC_PREFIXES: &[&str] = &[
    "阿昌",
    "白",
    "保安",
    "布朗",
    "布依",
    "朝鲜",
    "达斡尔",
    "傣",
    "德昂",
    "侗",
    "东乡",
    "独龙",
    "鄂伦春",
    "鄂温克",
    "俄罗斯",
    "高山",
    "仡佬",
    "哈尼",
    "哈萨克",
    "赫哲",
    "回",
    "基诺",
    "京",
    "景颇",
    "柯尔克孜",
    "拉祜",
    "黎",
    "傈僳",
    "珞巴",
    "满",
    "毛南",
    "门巴",
    "蒙古",
    "苗",
    "仫佬",
    "纳西",
    "怒",
    "普米",
    "羌",
    "撒拉",
    "畲",
    "水",
    "塔吉克",
    "塔塔尔",
    "土家",
    "土",
    "佤",
    "维吾尔",
    "乌孜别克",
    "锡伯",
    "瑶",
    "彝",
    "裕固",
    "藏",
    "壮",
    "各",
];

impl Registry {
    /// Builds the registry for `config`'s counties from the division table.
    pub fn build(file: &str, config: &RegistryConfig, div: &Divisions<'_>) -> Result<Registry, RegistryError> {
        let invalid = |key: &str, reason: String| RegistryError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        };
        // A division table comes from the deployment's schemas: a row too
        // short for what is read of it is an error naming it, not a panic.
        let provinces: HashMap<&str, &str> = csv_rows("provinces.csv", div.provinces, 2)
            .map(|r| r.map(|(_, f)| (f[0], f[1])))
            .collect::<Result<_, _>>()?;
        let cities: HashMap<&str, &str> = csv_rows("cities.csv", div.cities, 2)
            .map(|r| r.map(|(_, f)| (f[0], f[1])))
            .collect::<Result<_, _>>()?;
        let mut areas: HashMap<&str, (&str, &str)> = HashMap::new();
        for row in csv_rows("areas.csv", div.areas, 3) {
            let (line, f) = row?;
            if f[2].get(..2).is_none_or(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
                return Err(short_row(
                    "areas.csv",
                    line,
                    &format!("city code {:?} does not start with a province's two digits", f[2]),
                ));
            }
            areas.insert(f[0], (f[1], f[2]));
        }
        // streets.csv is sorted by code: each county's block, found in one
        // pass (a national registry names some 2,900 counties).
        let mut blocks: HashMap<&str, Vec<(usize, &str)>> = HashMap::new();
        for (n, line) in div.streets.lines().enumerate().skip(1) {
            if let Some(county) = line.get(..6) {
                blocks.entry(county).or_default().push((n + 1, line));
            }
        }
        let mut townships = BTreeMap::new();
        for county in &config.counties {
            let Some(&(county_name, city)) = areas.get(county.as_str()) else {
                return Err(invalid(
                    "counties",
                    format!("{county:?} is not a county code of the 2023 division table"),
                ));
            };
            let province = &city[..2];
            let (city_name, province_name) = (
                cities.get(city).copied().unwrap_or_default(),
                provinces.get(province).copied().unwrap_or_default(),
            );
            for &(n, line) in blocks.get(county.as_str()).into_iter().flatten() {
                let f = fields(line);
                let [code, name, ..] = f[..] else {
                    return Err(short_row("streets.csv", n, line));
                };
                townships.insert(
                    code.to_string(),
                    Township {
                        code: code.to_string(),
                        name: name.to_string(),
                        county: county.clone(),
                        county_name: county_name.to_string(),
                        city: city.to_string(),
                        city_name: city_name.to_string(),
                        province_name: province_name.to_string(),
                        province: province.to_string(),
                        population: None,
                    },
                );
            }
        }
        for (code, people) in &config.population {
            let Some(t) = townships.get_mut(code) else {
                return Err(invalid(
                    "population",
                    format!("{code:?} is not a township of the registry"),
                ));
            };
            if *people == 0 {
                return Err(invalid("population", format!("{code:?} has a population of 0")));
            }
            t.population = Some(*people);
        }
        let mut written: Vec<(String, String)> = townships.values().map(|t| (t.name.clone(), t.code.clone())).collect();
        for a in &config.aliases {
            if !townships.contains_key(&a.township) {
                return Err(invalid(
                    "aliases",
                    format!(
                        "{:?} points at {:?}, not a township of the registry",
                        a.name, a.township
                    ),
                ));
            }
            written.push((a.name.clone(), a.township.clone()));
        }
        Ok(Registry {
            townships,
            names: std::sync::Arc::new(Names {
                written,
                by_key: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Resolves a township name as written: official name, traditional
    /// spelling, missing suffix, missing ethnic qualifier, alias.
    pub fn resolve_name(&self, name: &str) -> NameMatch {
        // A part of a registry shares the whole's names: only its own
        // townships' codes count, and a name none of them has is tried
        // by its stem, as in a registry of those townships alone.
        let names = self.names.by_key();
        let codes = |key: &str| -> Vec<&String> {
            names
                .get(key)
                .into_iter()
                .flatten()
                .filter(|code| self.townships.contains_key(code.as_str()))
                .collect()
        };
        let folded = fold(name);
        let mut hit = codes(&folded);
        if hit.is_empty() {
            hit = codes(&stem(&folded));
        }
        match hit[..] {
            [] => NameMatch::Unknown,
            [one] => NameMatch::Found(one.clone()),
            ref many => NameMatch::Ambiguous(many.iter().map(|c| c.to_string()).collect()),
        }
    }

    /// Townships whose name shares a character with `name`'s stem: the
    /// candidates a person would look at when the name matches none.
    pub fn similar(&self, name: &str) -> Vec<String> {
        let s = stem(&fold(name));
        let mut out: Vec<String> = self
            .townships
            .values()
            .filter(|t| stem(&t.name).chars().any(|c| s.contains(c)))
            .map(|t| format!("{}({})", t.name, t.code))
            .collect();
        out.truncate(5);
        out
    }

    /// Township by code.
    pub fn get(&self, code: &str) -> Option<&Township> {
        self.townships.get(code)
    }

    /// The registry split by `key` (a province code, say), in one pass: each
    /// part holds its townships, whose names and aliases it resolves (a
    /// batch of the registry to run the checks over). The parts share the
    /// whole's names (a national registry's 80,000 names and stems made
    /// again per part were two thirds of a split's ~150 ms).
    pub fn split_by(&self, key: impl Fn(&Township) -> String) -> BTreeMap<String, Registry> {
        let mut parts: BTreeMap<String, Registry> = BTreeMap::new();
        for (code, t) in &self.townships {
            parts
                .entry(key(t))
                .or_insert_with(|| Registry {
                    townships: BTreeMap::new(),
                    names: self.names.clone(),
                })
                .townships
                .insert(code.clone(), t.clone());
        }
        parts
    }

    /// Counties covered, with their names.
    pub fn counties(&self) -> BTreeMap<String, String> {
        self.townships
            .values()
            .map(|t| (t.county.clone(), t.county_name.clone()))
            .collect()
    }
}

/// A division table's line as fields, each trimmed of blanks and quotes.
fn fields(line: &str) -> Vec<&str> {
    line.split(',').map(|f| f.trim().trim_matches('"')).collect()
}

/// A division table's rows after its header, blank lines left out, each
/// with its line number and at least `needed` fields (a shorter row is
/// an error naming the table and the line).
fn csv_rows<'t>(
    table: &'static str,
    text: &'t str,
    needed: usize,
) -> impl Iterator<Item = Result<(usize, Vec<&'t str>), RegistryError>> + 't {
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(move |(n, line)| {
            let f = fields(line);
            match f.len() >= needed {
                true => Ok((n + 1, f)),
                false => Err(short_row(table, n + 1, line)),
            }
        })
}

/// A division table's row that cannot be read: the table, its line and
/// why (the row itself, clipped, when it is too short).
fn short_row(table: &str, line: usize, why: &str) -> RegistryError {
    let why = match why.chars().count() > 80 {
        true => format!("{}…", why.chars().take(80).collect::<String>()),
        false => why.to_string(),
    };
    RegistryError::Invalid {
        file: format!("divisions/{table}"),
        key: format!("line {line}"),
        reason: format!("cannot be read as a division row: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(counties: &[&str]) -> Registry {
        let cfg = RegistryConfig {
            counties: counties.iter().map(|s| s.to_string()).collect(),
            aliases: vec![],
            population: Default::default(),
        };
        Registry::build("registry.toml", &cfg, &Divisions::embedded()).unwrap()
    }

    #[test]
    fn quanjiao_has_ten_townships_with_hierarchy() {
        let r = registry(&["341124"]);
        assert_eq!(r.townships.len(), 10);
        let t = r.get("341124102").unwrap();
        assert_eq!((t.name.as_str(), t.county_name.as_str()), ("大墅镇", "全椒县"));
        assert_eq!((t.city_name.as_str(), t.province_name.as_str()), ("滁州市", "安徽省"));
    }

    #[test]
    fn a_split_keeps_each_part_its_townships_and_their_names() {
        let r = registry(&["341124", "533122", "110101"]);
        let parts = r.split_by(|t| t.province.clone());
        assert_eq!(parts.keys().collect::<Vec<_>>(), vec!["11", "34", "53"]);
        assert_eq!(
            parts.values().map(|p| p.townships.len()).sum::<usize>(),
            r.townships.len()
        );
        assert!(
            parts
                .iter()
                .all(|(k, p)| p.townships.values().all(|t| &t.province == k))
        );
        let found = |s: &str| NameMatch::Found(s.to_string());
        assert_eq!(parts["34"].resolve_name("大墅鎮"), found("341124102"));
        assert_eq!(parts["53"].resolve_name("九保鄉"), found("533122204"));
        assert_eq!(parts["53"].resolve_name("大墅鎮"), NameMatch::Unknown);
    }

    /// A division table (the deployment's own files) with a row too
    /// short for what is read of it, or a county whose city code names
    /// no province, is an error naming the table and line: never a panic,
    /// and a short row of a county not asked for is not read.
    #[test]
    fn a_short_division_row_is_an_error_naming_its_table_and_line() {
        let div = Divisions::embedded();
        let cfg = RegistryConfig {
            counties: vec!["341124".into()],
            aliases: vec![],
            population: Default::default(),
        };
        let with = |table: &str, extra: &str| {
            let (mut p, mut c, mut a, mut s) = (
                div.provinces.to_string(),
                div.cities.to_string(),
                div.areas.to_string(),
                div.streets.to_string(),
            );
            match table {
                "provinces.csv" => p.push_str(extra),
                "cities.csv" => c.push_str(extra),
                "areas.csv" => a = a.replace("341124,\"全椒县\",3411,34", extra.trim()),
                _ => s.push_str(extra),
            }
            let d = Divisions {
                provinces: &p,
                cities: &c,
                areas: &a,
                streets: &s,
            };
            Registry::build("registry.toml", &cfg, &d).map(|r| r.townships.len())
        };
        let lines = |t: &str| t.lines().count() + 1;
        for (table, extra, line) in [
            ("provinces.csv", "99\n", lines(div.provinces)),
            ("cities.csv", "\"9901\"\n", lines(div.cities)),
            ("streets.csv", "341124999\n", lines(div.streets)),
            ("areas.csv", "341124,全椒县", 0),
            ("areas.csv", "341124,全椒县,3", 0),
            ("areas.csv", "341124,全椒县,\"\",34", 0),
        ] {
            let e = with(table, extra).expect_err(extra).to_string();
            assert!(e.starts_with(&format!("divisions/{table}: line ")), "{e}");
            if line > 0 {
                assert!(e.contains(&format!("line {line}:")), "{e}");
            }
        }
        // A short row of another county's townships is not read.
        assert_eq!(with("streets.csv", "110101999\n").unwrap(), 10);
        assert_eq!(with("streets.csv", "\n\n").unwrap(), 10);
    }

    /// A part resolves names as a registry of its townships alone would:
    /// a name two parts share is found in each, and a name only another
    /// part has as written is tried by its stem.
    #[test]
    fn a_part_resolves_names_as_a_registry_of_its_townships_alone() {
        let r = registry(&["341124", "130225", "130922"]);
        let parts = r.split_by(|t| t.province.clone());
        // Names are made into keys once, when the first is resolved, for
        // the whole and its parts at once.
        assert!(r.names.by_key.get().is_none());
        assert!(parts.values().all(|p| std::sync::Arc::ptr_eq(&p.names, &r.names)));
        let found = |s: &str| NameMatch::Found(s.to_string());
        for (part, alone) in [
            (&parts["34"], registry(&["341124"])),
            (&parts["13"], registry(&["130225", "130922"])),
        ] {
            for name in ["马厂镇", "古河乡", "古河", "大墅镇", "襄河", "无此镇"] {
                assert_eq!(part.resolve_name(name), alone.resolve_name(name), "{name}");
            }
        }
        assert_eq!(
            r.resolve_name("马厂镇"),
            NameMatch::Ambiguous(vec!["130922105".into(), "341124105".into()])
        );
        assert_eq!(parts["34"].resolve_name("马厂镇"), found("341124105"));
        assert_eq!(parts["13"].resolve_name("马厂镇"), found("130922105"));
        // 古河乡 is Hebei's as written; Anhui's part has only 古河镇.
        assert_eq!(r.resolve_name("古河乡"), found("130225203"));
        assert_eq!(parts["34"].resolve_name("古河乡"), found("341124101"));
        assert_eq!(parts["13"].resolve_name("古河乡"), found("130225203"));
        assert!(r.names.by_key.get().is_some());
    }

    #[test]
    fn names_as_written_resolve() {
        let r = registry(&["341124", "533122"]);
        let found = |s: &str| NameMatch::Found(s.to_string());
        assert_eq!(r.resolve_name("大墅鎮"), found("341124102"));
        assert_eq!(r.resolve_name("大墅"), found("341124102"));
        assert_eq!(r.resolve_name("九保鄉"), found("533122204"));
        assert_eq!(r.resolve_name("九保阿昌族乡"), found("533122204"));
        assert_eq!(r.resolve_name("章辉"), NameMatch::Unknown);
    }

    #[test]
    fn upgrades_aliases_and_ambiguity() {
        let cfg: RegistryConfig = toml::from_str(
            r#"counties = ["341124", "120114", "120115"]
               [[aliases]]
               name = "章辉乡"
               township = "341124100"
               until = "2005-01-01""#,
        )
        .unwrap();
        let r = Registry::build("registry.toml", &cfg, &Divisions::embedded()).unwrap();
        let found = |s: &str| NameMatch::Found(s.to_string());
        // 乡 → 镇 and 镇 → 街道 upgrades: the old suffix still finds the township.
        assert_eq!(r.resolve_name("古河乡"), found("341124101"));
        assert_eq!(r.resolve_name("大墅街道"), found("341124102"));
        // A merged township's old name, kept as an alias.
        assert_eq!(r.resolve_name("章辉乡"), found("341124100"));
        assert_eq!(r.resolve_name("章輝鄉"), found("341124100"));
        // 黄庄街道 (武清区) and 黄庄镇 (宝坻区): 黄庄 alone could be either.
        match r.resolve_name("黄庄") {
            NameMatch::Ambiguous(c) => {
                assert!(c.iter().any(|c| c.contains("120114004")), "{c:?}");
                assert!(c.iter().any(|c| c.contains("120115125")), "{c:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.resolve_name("黄庄镇"), found("120115125"));
    }

    #[test]
    fn population_is_attached_and_checked() {
        let mut cfg: RegistryConfig =
            toml::from_str("counties = [\"341124\"]\n[population]\n341124102 = 31000").unwrap();
        let r = Registry::build("registry.toml", &cfg, &Divisions::embedded()).unwrap();
        assert_eq!(r.get("341124102").unwrap().population, Some(31_000));
        assert_eq!(r.get("341124103").unwrap().population, None);
        cfg.population.insert("533122204".into(), 5000);
        let err = Registry::build("registry.toml", &cfg, &Divisions::embedded())
            .unwrap_err()
            .to_string();
        assert!(err.contains("population") && err.contains("533122204"), "{err}");
    }

    #[test]
    fn unknown_county_is_an_error_naming_the_key() {
        let cfg = RegistryConfig {
            counties: vec!["999999".into()],
            aliases: vec![],
            population: Default::default(),
        };
        let err = Registry::build("registry.toml", &cfg, &Divisions::embedded())
            .unwrap_err()
            .to_string();
        assert!(err.contains("registry.toml: counties"), "{err}");
    }
}
