//! Roll up: township rows to the county, then county to city, city to
//! province and province to the nation, each level from the one below, per
//! indicator, breakdown cell and period. The county level sums the rows that
//! passed the error-severity checks and counts the excluded townships; every
//! level carries townships expected (the registry's), reporting (readable
//! submissions), included and excluded, the year-to-date value and progress
//! against the area's quota. A cell whose townships are all excluded still
//! appears (value null, exclusions counted). Pure: no IO, no clock.

use polars::prelude::*;
use taizhang_model::Quota;
use taizhang_model::schema::{LEVELS, Level, rollup_columns, with_year};

use crate::catalog::Catalog;
use crate::registry::Registry;
use crate::text::Texts;

/// The nation's code inside the computation (never published).
const NATION: &str = "nation";

/// The column holding a level's area code inside the computation.
fn code_col(level: Level) -> &'static str {
    level.code.unwrap_or(NATION)
}

/// The registry as the `dim_townships` table has it: every township with
/// its county, city and province, codes and names, and its population.
pub fn dim_townships(registry: &Registry) -> PolarsResult<DataFrame> {
    let ts: Vec<_> = registry.townships.values().collect();
    let col = |f: fn(&crate::registry::Township) -> &String| ts.iter().map(|t| f(t).clone()).collect::<Vec<String>>();
    DataFrame::new_infer_height(vec![
        Column::new("township".into(), col(|t| &t.code)),
        Column::new("township_name".into(), col(|t| &t.name)),
        Column::new("county".into(), col(|t| &t.county)),
        Column::new("county_name".into(), col(|t| &t.county_name)),
        Column::new("city".into(), col(|t| &t.city)),
        Column::new("city_name".into(), col(|t| &t.city_name)),
        Column::new("province".into(), col(|t| &t.province)),
        Column::new("province_name".into(), col(|t| &t.province_name)),
        Column::new(
            "population".into(),
            ts.iter().map(|t| t.population.map(|p| p as i64)).collect::<Vec<_>>(),
        ),
    ])
}

/// Every township of the registry with its county, city, province and the
/// nation, codes and names.
fn areas(registry: &Registry) -> PolarsResult<DataFrame> {
    dim_townships(registry)?
        .lazy()
        .select([
            col("township"),
            col("county"),
            col("county_name"),
            col("city"),
            col("city_name"),
            col("province"),
            col("province_name"),
            lit(NATION).alias(NATION),
        ])
        .collect()
}

/// Each county's yearly quota per indicator: the county's own row, else the
/// sum of its townships'.
fn county_quotas(registry: &Registry, quotas: &[Quota]) -> PolarsResult<LazyFrame> {
    let (mut q_county, mut q_year, mut q_ind, mut q_val, mut q_own) = (vec![], vec![], vec![], vec![], vec![]);
    for q in quotas {
        let (county, own) = match registry.get(&q.code) {
            Some(t) => (t.county.clone(), false),
            None => (q.code.clone(), true),
        };
        q_county.push(county);
        q_year.push(q.year);
        q_ind.push(q.indicator.clone());
        q_val.push(q.quota);
        q_own.push(own);
    }
    Ok(DataFrame::new_infer_height(vec![
        Column::new("county".into(), q_county),
        Column::new("year".into(), q_year),
        Column::new("indicator".into(), q_ind),
        Column::new("q".into(), q_val),
        Column::new("own".into(), q_own),
    ])?
    .lazy()
    .group_by([col("county"), col("year"), col("indicator")])
    .agg([
        col("q").filter(col("own")).sum().alias("own_q"),
        col("own").any(true).alias("has_own"),
        col("q").filter(col("own").not()).sum().alias("sum_q"),
    ])
    .select([
        col("county"),
        col("year"),
        col("indicator"),
        when(col("has_own"))
            .then(col("own_q"))
            .otherwise(col("sum_q"))
            .alias("quota"),
    ]))
}

/// What every level needs besides its cells.
struct Context {
    areas: DataFrame,
    county_quotas: LazyFrame,
    kinds: LazyFrame,
    /// (township, period) of every readable submission.
    reporting: LazyFrame,
}

impl Context {
    fn new(submissions: &DataFrame, registry: &Registry, quotas: &[Quota], catalog: &Catalog) -> PolarsResult<Self> {
        Ok(Context {
            areas: areas(registry)?,
            county_quotas: county_quotas(registry, quotas)?,
            kinds: crate::checks::quota::kinds(catalog)?,
            reporting: submissions
                .clone()
                .lazy()
                .filter(col("status").neq(lit("quarantined")))
                .select([col("township"), col("period")]),
        })
    }

    /// Completes a level's cells (program, area code, period, year,
    /// indicator, dimension, category, value, unit, townships_included,
    /// townships_excluded): area names, townships expected and reporting,
    /// quota, year to date and progress.
    fn finish(&self, cells: LazyFrame, level: Level) -> PolarsResult<DataFrame> {
        let code = code_col(level);
        let areas = self.areas.clone().lazy();
        let mut named = vec![col(code)];
        named.extend(level.name.map(col));
        let expected = areas.clone().group_by(named.clone()).agg([col("township")
            .n_unique()
            .cast(DataType::Int64)
            .alias("townships_expected")]);
        let reporting = self
            .reporting
            .clone()
            .join(
                areas.clone().select([col("township"), col(code)]),
                [col("township")],
                [col("township")],
                JoinArgs::new(JoinType::Inner),
            )
            .group_by([col(code), col("period")])
            .agg([col("township")
                .n_unique()
                .cast(DataType::Int64)
                .alias("townships_reporting")]);
        // An area's quota is the sum of its counties' only when every county
        // of the area (in the registry) has one: a partial sum would make
        // progress look better than it is.
        let county_area = areas
            .clone()
            .select([col("county"), col(code).alias("area")])
            .unique(None, UniqueKeepStrategy::First);
        let counties = county_area
            .clone()
            .group_by([col("area")])
            .agg([col("county").n_unique().alias("counties")]);
        let quota = self
            .county_quotas
            .clone()
            .join(
                county_area,
                [col("county")],
                [col("county")],
                JoinArgs::new(JoinType::Inner),
            )
            .group_by([col("area"), col("year"), col("indicator")])
            .agg([col("quota").sum(), col("county").n_unique().alias("with_quota")])
            .join(counties, [col("area")], [col("area")], JoinArgs::new(JoinType::Left))
            .select([
                col("area").alias(code),
                col("year"),
                col("indicator"),
                when(col("with_quota").eq(col("counties")))
                    .then(col("quota"))
                    .otherwise(lit(NULL).cast(DataType::Float64))
                    .alias("quota"),
            ]);
        let (group, sort) = running(code);
        let cells = cells
            .join(expected, [col(code)], [col(code)], JoinArgs::new(JoinType::Left))
            .join(
                reporting,
                [col(code), col("period")],
                [col(code), col("period")],
                JoinArgs::new(JoinType::Left),
            )
            .join(
                quota,
                [col(code), col("year"), col("indicator")],
                [col(code), col("year"), col("indicator")],
                JoinArgs::new(JoinType::Left),
            )
            .join(
                self.kinds.clone(),
                [col("indicator")],
                [col("indicator")],
                JoinArgs::new(JoinType::Left),
            )
            .sort(sort, SortMultipleOptions::default().with_nulls_last(false))
            .with_columns([
                col("townships_excluded").fill_null(lit(0i64)),
                col("townships_reporting").fill_null(lit(0i64)),
                when(col("dimension").is_null())
                    .then(col("quota"))
                    .otherwise(lit(NULL).cast(DataType::Float64))
                    .alias("quota"),
            ]);
        with_ytd(cells, group)?
            .with_column((col("ytd_value") / col("quota")).alias("progress"))
            .select(
                with_year(&rollup_columns(level))
                    .into_iter()
                    .map(col)
                    .collect::<Vec<_>>(),
            )
            .collect()
    }

    /// A level's table whose periods were completed apart (a batch each),
    /// with its year to date and progress made again over every period.
    ///
    /// Rows already in that order are not sorted again (the sort was a
    /// third of a national month's rollup levels, 0.1 of 0.31 s), and rows
    /// with one row per cell (one period's county rows, stacked a batch at
    /// a time in the batches' order, each batch's sorted) are as they are:
    /// a cell of one row has its own value to date, as `finish` made it
    /// (0.06 s more).
    fn years_to_date(&self, table: DataFrame, level: Level) -> PolarsResult<DataFrame> {
        let (group, sort) = running(code_col(level));
        let order = order(&table, &sort, CELL_KEYS)?;
        if order == Order::EachCellOnce {
            return Ok(table);
        }
        let columns: Vec<Expr> = table.get_column_names().into_iter().map(|c| col(c.clone())).collect();
        let joined = table.lazy().join(
            self.kinds.clone(),
            [col("indicator")],
            [col("indicator")],
            JoinArgs {
                maintain_order: MaintainOrderJoin::Left,
                ..JoinArgs::new(JoinType::Left)
            },
        );
        let sorted = match order {
            Order::Unordered => joined.sort(sort, SortMultipleOptions::default().with_nulls_last(false)),
            _ => joined,
        };
        with_ytd(sorted, group)?
            .with_column((col("ytd_value") / col("quota")).alias("progress"))
            .select(columns)
            .collect()
    }
}

/// The keys of [`running`]'s order that name a cell (program, area,
/// indicator, dimension, category: a period's year is its own).
const CELL_KEYS: usize = 5;

/// The cells a running year-to-date sum runs over at a level (area, year,
/// indicator, dimension, category), and the order it runs in.
fn running(code: &str) -> ([Expr; 5], Vec<String>) {
    let group = [
        col(code),
        col("year"),
        col("indicator"),
        col("dimension"),
        col("category"),
    ];
    let mut sort = vec!["program".to_string(), code.to_string()];
    sort.extend(["indicator", "dimension", "category", "period"].map(String::from));
    (group, sort)
}

/// How `frame`'s rows stand to the order of its text columns `keys` (each
/// nulls first, then by bytes, as polars sorts them), the first `cell` of
/// them naming a row's cell.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Order {
    /// Not in the order (or a key is not text).
    Unordered,
    /// In the order, ties allowed.
    Ordered,
    /// In the order, and no two rows of one cell.
    EachCellOnce,
}

/// [`Order`] of `frame` by `keys`: one pass over each key, for the row
/// pairs still tied on the keys before it.
fn order(frame: &DataFrame, keys: &[String], cell: usize) -> PolarsResult<Order> {
    let n = frame.height();
    // Whether row i and row i + 1 are equal on every key so far.
    let mut tied = vec![true; n.saturating_sub(1)];
    let mut each_once = n < 2;
    for (k, key) in keys.iter().enumerate() {
        if k == cell {
            each_once = !tied.contains(&true);
        }
        let Ok(values) = frame.column(key)?.str() else {
            return Ok(Order::Unordered);
        };
        let mut values = values.iter();
        let mut before = values.next().flatten();
        for (tie, value) in tied.iter_mut().zip(values) {
            if *tie {
                match before.cmp(&value) {
                    std::cmp::Ordering::Less => *tie = false,
                    std::cmp::Ordering::Equal => {}
                    std::cmp::Ordering::Greater => return Ok(Order::Unordered),
                }
            }
            before = value;
        }
    }
    if cell >= keys.len() {
        each_once = !tied.contains(&true);
    }
    Ok(match each_once {
        true => Order::EachCellOnce,
        false => Order::Ordered,
    })
}

/// Year to date, over rows sorted by period within `group`: the running sum
/// of a flow, the value of a stock.
fn ytd_value(group: [Expr; 5]) -> PolarsResult<Expr> {
    Ok(when(col("is_flow"))
        .then(col("value").fill_null(lit(0.0)).cum_sum(false).over(group)?)
        .otherwise(col("value"))
        .alias("ytd_value"))
}

/// Working column: the row starts a cell.
const STARTS: &str = "__starts";

/// `frame`, sorted as [`running`] sorts it, with [`ytd_value`] made in one
/// pass over its rows (a cell's rows are together, in period order): polars
/// evaluates that window one small frame per cell, a quarter of a
/// province's county rollup. Rows of several programs, whose cells need not
/// be together, take the window.
fn with_ytd(frame: LazyFrame, group: [Expr; 5]) -> PolarsResult<LazyFrame> {
    let starts = group.iter().fold(lit(false), |any, k| {
        any.or(k.clone().neq_missing(k.clone().shift(lit(1))))
    });
    let mut df = frame.with_column(starts.alias(STARTS)).collect()?;
    let working = Selector::ByName {
        names: [STARTS.into()].into(),
        strict: true,
    };
    if df.column("program")?.n_unique()? > 1 {
        return Ok(df.lazy().drop(working).with_column(ytd_value(group)?));
    }
    let (starts, value, flow) = (
        df.column(STARTS)?.bool()?,
        df.column("value")?.f64()?,
        df.column("is_flow")?.bool()?,
    );
    let mut ytd: Vec<Option<f64>> = Vec::with_capacity(df.height());
    let mut sum = 0.0;
    for i in 0..df.height() {
        let v = value.get(i);
        // As cum_sum adds: from 0.0 (a cell's first -0.0 sums to 0.0).
        if i == 0 || starts.get(i) == Some(true) {
            sum = 0.0;
        }
        sum += v.unwrap_or(0.0);
        ytd.push(if flow.get(i) == Some(true) { Some(sum) } else { v });
    }
    df.with_column(Column::new("ytd_value".into(), ytd))?;
    Ok(df.lazy().drop(working))
}

/// Builds the county rollup.
pub fn county(
    facts: &DataFrame,
    checks: &DataFrame,
    submissions: &DataFrame,
    registry: &Registry,
    quotas: &[Quota],
    catalog: &Catalog,
) -> PolarsResult<DataFrame> {
    let ctx = Context::new(submissions, registry, quotas, catalog)?;
    county_level(facts, checks, &ctx)
}

fn county_level(facts: &DataFrame, checks: &DataFrame, ctx: &Context) -> PolarsResult<DataFrame> {
    let excluded = checks
        .clone()
        .lazy()
        .filter(col("excluded"))
        .select([col("township"), col("period"), col("indicator")])
        .unique(None, UniqueKeepStrategy::First)
        .collect()?;
    let cells = match county_cells_by_report(facts, &excluded)? {
        Some(cells) => cells,
        None => county_cells(facts, excluded)?,
    };
    ctx.finish(cells.lazy(), LEVELS[0])
}

/// The county cells of `facts` (program, county, period, year, indicator,
/// dimension, category, value, unit, townships_included and
/// townships_excluded, null when none), the rows of `excluded` (township,
/// period, indicator) left out of their value and counted apart: the
/// group-by.
fn county_cells(facts: &DataFrame, excluded: DataFrame) -> PolarsResult<DataFrame> {
    let keys = [col("township"), col("period"), col("indicator")];
    let marked = facts
        .clone()
        .lazy()
        .join(
            excluded.lazy().with_column(lit(true).alias("is_excluded")),
            keys.clone(),
            keys,
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("is_excluded").fill_null(lit(false)));
    let cell = [
        col("program"),
        col("county"),
        col("period"),
        col("year"),
        col("indicator"),
        col("dimension"),
        col("category"),
    ];
    // Every cell any township reported appears, even when every township
    // of it is excluded: value null, the exclusions counted.
    let kept = col("is_excluded").not();
    let included = marked.clone().group_by(cell).agg([
        when(col("value").filter(kept.clone()).count().gt(lit(0)))
            .then(col("value").filter(kept.clone()).sum())
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias("value"),
        col("unit").first().alias("unit"),
        col("township")
            .filter(kept)
            .n_unique()
            .cast(DataType::Int64)
            .alias("townships_included"),
    ]);
    let excluded_counts = marked
        .filter(col("is_excluded"))
        .group_by([col("county"), col("period"), col("indicator")])
        .agg([col("township")
            .n_unique()
            .cast(DataType::Int64)
            .alias("townships_excluded")]);
    included
        .join(
            excluded_counts,
            [col("county"), col("period"), col("indicator")],
            [col("county"), col("period"), col("indicator")],
            JoinArgs::new(JoinType::Left),
        )
        .collect()
}

/// [`county_cells`] made in one pass over facts that come a report at a
/// time, as a batch's do: runs of one (program, township, county, period,
/// year), each (township, period) in one run. A run's cells are mostly the
/// run before's in the same order, so a row's cell is found by comparing it
/// with the row at its place in the run before, or a few places on
/// ([`Texts::same`]), not by hashing its keys (the group-by hashed seven keys of every row and
/// filtered every group: 2.0 of a national month's 2.8 rollup CPU-s). Sums
/// are polars' to the last bit ([`GroupSum`], in row order). None when the
/// facts do not come so, or a key but the breakdown's is null: the
/// group-by makes them.
fn county_cells_by_report(facts: &DataFrame, excluded: &DataFrame) -> PolarsResult<Option<DataFrame>> {
    /// Places of the run before looked at for a row's cell before its keys
    /// are hashed.
    const LOOK_AHEAD: usize = 4;
    use crate::checks::GroupSum;
    let keys = ["program", "township", "county", "period", "indicator", "year"];
    for key in keys {
        if facts.column(key)?.null_count() > 0 {
            return Ok(None);
        }
    }
    let text = |c: &str| Texts::of(facts, c);
    let (program, township, county, period) = (text("program")?, text("township")?, text("county")?, text("period")?);
    let (indicator, dimension, category, unit) =
        (text("indicator")?, text("dimension")?, text("category")?, text("unit")?);
    let year = facts.column("year")?.i32()?.rechunk();
    let year = year.cont_slice()?;
    let value = facts.column("value")?.f64()?;
    // The excluded indicators of each (township, period); a null key
    // matches no row, as in a join.
    let mut excluded_of: PlHashMap<(&str, &str), PlHashSet<&str>> = PlHashMap::new();
    let ex = |c: &str| -> PolarsResult<&StringChunked> { excluded.column(c)?.str() };
    for ((t, p), i) in ex("township")?
        .iter()
        .zip(ex("period")?.iter())
        .zip(ex("indicator")?.iter())
    {
        if let (Some(t), Some(p), Some(i)) = (t, p, i) {
            excluded_of.entry((t, p)).or_default().insert(i);
        }
    }
    /// A cell: its first row (its keys and unit), and what its rows add up
    /// to.
    struct Cell {
        row: usize,
        sum: GroupSum,
        values: i64,
        townships: i64,
        /// The run that counted its last township.
        last_run: usize,
    }
    type Key<'a> = (
        &'a str,
        &'a str,
        &'a str,
        i32,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
    );
    let key = |row: usize| -> Key<'_> {
        fn some(t: &Texts, row: usize) -> &str {
            t.get(row).unwrap_or_default()
        }
        (
            some(&program, row),
            some(&county, row),
            some(&period, row),
            year[row],
            some(&indicator, row),
            dimension.get(row),
            category.get(row),
        )
    };
    // A county's cells are a report's (~150 of a national month's) times
    // its townships' few extra ones: room for them up front, not rehashed
    // as they come.
    let mut cell_of: PlHashMap<Key<'_>, usize> = PlHashMap::with_capacity(facts.height() / 8);
    let mut cells: Vec<Cell> = Vec::new();
    let mut seen: PlHashSet<(&str, &str)> = PlHashSet::new();
    // The (row, cell) of the run before and of this one, by place in the
    // run, and where in the run before the next row is looked for.
    let mut before: Vec<(usize, usize)> = vec![];
    let mut now: Vec<(usize, usize)> = vec![];
    let mut next = 0;
    let mut excluded_townships: PlHashSet<(&str, &str, &str, &str)> = PlHashSet::new();
    // This run's first row, whether its program, county, period and year
    // are the run before's, and its excluded indicators.
    let mut run: Option<(usize, bool, Option<&PlHashSet<&str>>)> = None;
    let mut runs = 0;
    let same_report =
        |a: usize, b: usize| program.same(a, b) && county.same(a, b) && period.same(a, b) && year[a] == year[b];
    for (row, v) in value.iter().enumerate() {
        let (like_before, exclusions) = match run {
            Some((first, like_before, exclusions)) if township.same(row, first) && same_report(row, first) => {
                (like_before, exclusions)
            }
            _ => {
                let (t, p) = (
                    township.get(row).unwrap_or_default(),
                    period.get(row).unwrap_or_default(),
                );
                if !seen.insert((t, p)) {
                    return Ok(None);
                }
                let like_before = run.is_some_and(|(first, ..)| same_report(row, first));
                std::mem::swap(&mut before, &mut now);
                now.clear();
                next = 0;
                runs += 1;
                let exclusions = excluded_of.get(&(t, p));
                run = Some((row, like_before, exclusions));
                (like_before, exclusions)
            }
        };
        // The row's cell in the run before: at the place after the last
        // one found, or a few places on (a value the run before has and
        // this one has not: a quarantined value shifts a run's rows, and
        // the next run's after it); else (a value the run before has not)
        // by its keys, the place looked at next left where it was.
        let mut found = None;
        if like_before {
            for (place, &(was, cell)) in before.iter().enumerate().skip(next).take(LOOK_AHEAD) {
                if indicator.same(row, was) && dimension.same(row, was) && category.same(row, was) {
                    found = Some(cell);
                    next = place + 1;
                    break;
                }
            }
        }
        let cell = match found {
            Some(cell) => cell,
            None => *cell_of.entry(key(row)).or_insert_with(|| {
                cells.push(Cell {
                    row,
                    sum: GroupSum::default(),
                    values: 0,
                    townships: 0,
                    last_run: 0,
                });
                cells.len() - 1
            }),
        };
        now.push((row, cell));
        if let Some(e) = exclusions {
            let i = indicator.get(row).unwrap_or_default();
            if e.contains(i) {
                let (c, p) = (county.get(row).unwrap_or_default(), period.get(row).unwrap_or_default());
                excluded_townships.insert((c, p, i, township.get(row).unwrap_or_default()));
                continue;
            }
        }
        let cell = &mut cells[cell];
        if let Some(v) = v {
            cell.sum.add(v);
            cell.values += 1;
        }
        if cell.last_run != runs {
            cell.last_run = runs;
            cell.townships += 1;
        }
    }
    let mut excluded_counts: PlHashMap<(&str, &str, &str), i64> = PlHashMap::new();
    for (c, p, i, _) in &excluded_townships {
        *excluded_counts.entry((c, p, i)).or_default() += 1;
    }
    fn at<'t>(t: &'t Texts, cells: &[Cell]) -> Vec<Option<&'t str>> {
        cells.iter().map(|c| t.get(c.row)).collect()
    }
    let texts = |t| at(t, &cells);
    Ok(Some(DataFrame::new_infer_height(vec![
        Column::new("program".into(), texts(&program)),
        Column::new("county".into(), texts(&county)),
        Column::new("period".into(), texts(&period)),
        Column::new("year".into(), cells.iter().map(|c| year[c.row]).collect::<Vec<_>>()),
        Column::new("indicator".into(), texts(&indicator)),
        Column::new("dimension".into(), texts(&dimension)),
        Column::new("category".into(), texts(&category)),
        Column::new(
            "value".into(),
            cells
                .iter()
                .map(|c| (c.values > 0).then(|| c.sum.sum()))
                .collect::<Vec<_>>(),
        ),
        Column::new("unit".into(), texts(&unit)),
        Column::new(
            "townships_included".into(),
            cells.iter().map(|c| c.townships).collect::<Vec<_>>(),
        ),
        Column::new(
            "townships_excluded".into(),
            cells
                .iter()
                .map(|c| {
                    let k = key(c.row);
                    excluded_counts.get(&(k.1, k.2, k.4)).copied()
                })
                .collect::<Vec<_>>(),
        ),
    ])?))
}

/// One level up: the cells of `child` (a level's table) summed by the
/// parent area, then completed like every level.
fn level_up(child: &DataFrame, from: Level, to: Level, ctx: &Context) -> PolarsResult<DataFrame> {
    let (child_code, code) = (code_col(from), code_col(to));
    let map = ctx
        .areas
        .clone()
        .lazy()
        .select([col(child_code), col(code)])
        .unique(None, UniqueKeepStrategy::First);
    let cells = child
        .clone()
        .lazy()
        .join(
            map,
            [col(child_code)],
            [col(child_code)],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by([
            col("program"),
            col(code),
            col("period"),
            col("year"),
            col("indicator"),
            col("dimension"),
            col("category"),
        ])
        .agg([
            when(col("value").count().gt(lit(0)))
                .then(col("value").sum())
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("value"),
            col("unit").first().alias("unit"),
            col("townships_included").sum().alias("townships_included"),
            col("townships_excluded").sum().alias("townships_excluded"),
        ]);
    ctx.finish(cells, to)
}

/// Every level's rollup, bottom up: county, city, province, nation.
pub fn hierarchy(
    facts: &DataFrame,
    checks: &DataFrame,
    submissions: &DataFrame,
    registry: &Registry,
    quotas: &[Quota],
    catalog: &Catalog,
) -> PolarsResult<[DataFrame; 4]> {
    let county = county(facts, checks, submissions, registry, quotas, catalog)?;
    levels_up(county, submissions, registry, quotas, catalog)
}

/// The levels above the county from the county rollup of every county
/// (made batch by batch: a batch's year to date counts only its own
/// periods, so the county's is made again here over all of them), and `submissions` (at least `township`, `period`,
/// `status` of every current submission) for the reporting counts.
pub fn levels_up(
    county: DataFrame,
    submissions: &DataFrame,
    registry: &Registry,
    quotas: &[Quota],
    catalog: &Catalog,
) -> PolarsResult<[DataFrame; 4]> {
    let ctx = Context::new(submissions, registry, quotas, catalog)?;
    let county = ctx.years_to_date(county, LEVELS[0])?;
    let city = level_up(&county, LEVELS[0], LEVELS[1], &ctx)?;
    let province = level_up(&city, LEVELS[1], LEVELS[2], &ctx)?;
    let nation = level_up(&province, LEVELS[2], LEVELS[3], &ctx)?;
    Ok([county, city, province, nation])
}

/// The cells of a published level a running year-to-date sum continues
/// over: its area (none for the nation), year, indicator, dimension,
/// category.
fn cell_keys(level: Level) -> Vec<Expr> {
    let mut keys: Vec<Expr> = level.code.map(col).into_iter().collect();
    keys.extend(["year", "indicator", "dimension", "category"].map(col));
    keys
}

/// One period's levels: [`levels_up`] over the county rows of one period,
/// each flow's year to date continued from `before` (each level's carry
/// after the period before in the same run of periods; None for the
/// first), and each level's carry after this period (every cell of the
/// level seen so far with its last year to date: area, year, indicator,
/// dimension, category, `ytd_value`): [`PeriodRollup`]'s county level and
/// the levels above it.
pub fn period_levels(
    county: DataFrame,
    submissions: &DataFrame,
    registry: &Registry,
    quotas: &[Quota],
    catalog: &Catalog,
    before: Option<&[DataFrame; 4]>,
) -> PolarsResult<([DataFrame; 4], [DataFrame; 4])> {
    let rollup = PeriodRollup::new(submissions, registry, quotas, catalog, before)?;
    let county = rollup.to_date(county)?;
    let (above, above_carry) = rollup.above(&county)?;
    let (county, county_carry) = rollup.county(county)?;
    let [city, province, nation] = above;
    let [city_carry, province_carry, nation_carry] = above_carry;
    Ok((
        [county, city, province, nation],
        [county_carry, city_carry, province_carry, nation_carry],
    ))
}

/// [`period_levels`] in two halves that need nothing of each other, so
/// that the county level (the largest table by far: a national month's
/// 446,700 rows against its cities' 51,300) can be published while the
/// levels above it are made.
pub struct PeriodRollup<'b> {
    ctx: Context,
    kinds: LazyFrame,
    before: Option<&'b [DataFrame; 4]>,
}

impl<'b> PeriodRollup<'b> {
    /// The rollup of one period's county rows with `submissions` (for the
    /// reporting counts) after `before` (see [`period_levels`]).
    pub fn new(
        submissions: &DataFrame,
        registry: &Registry,
        quotas: &[Quota],
        catalog: &Catalog,
        before: Option<&'b [DataFrame; 4]>,
    ) -> PolarsResult<Self> {
        Ok(PeriodRollup {
            ctx: Context::new(submissions, registry, quotas, catalog)?,
            kinds: crate::checks::quota::kinds(catalog)?,
            before,
        })
    }

    /// The period's county rows with their year to date (the batches'
    /// rows as they are, see `Context::years_to_date`): what
    /// [`PeriodRollup::county`] and [`PeriodRollup::above`] are given.
    pub fn to_date(&self, county: DataFrame) -> PolarsResult<DataFrame> {
        self.ctx.years_to_date(county, LEVELS[0])
    }

    /// The county level's table and carry, of [`PeriodRollup::to_date`]'s
    /// rows.
    pub fn county(&self, county: DataFrame) -> PolarsResult<(DataFrame, DataFrame)> {
        self.continued(0, county)
    }

    /// The city, province and nation levels' tables and carries, of
    /// [`PeriodRollup::to_date`]'s rows (their values and counts: the
    /// county's year to date is not read).
    pub fn above(&self, county: &DataFrame) -> PolarsResult<([DataFrame; 3], [DataFrame; 3])> {
        let (mut tables, mut carry) = (vec![], vec![]);
        let mut below = county.clone();
        for i in 1..LEVELS.len() {
            let table = level_up(&below, LEVELS[i - 1], LEVELS[i], &self.ctx)?;
            let (published, after) = self.continued(i, table.clone())?;
            tables.push(published);
            carry.push(after);
            below = table;
        }
        let three = |v: Vec<DataFrame>| -> [DataFrame; 3] { v.try_into().expect("three levels") };
        Ok((three(tables), three(carry)))
    }

    /// Level `i`'s table continued from its carry before, and its carry
    /// after.
    fn continued(&self, i: usize, table: DataFrame) -> PolarsResult<(DataFrame, DataFrame)> {
        let level = LEVELS[i];
        let before = self.before.map(|b| &b[i]);
        let table = match before {
            Some(b) => continued(table, level, b, self.kinds.clone())?,
            None => table,
        };
        let carry = carry_out(&table, level, before)?;
        Ok((table, carry))
    }
}

/// A level's table of one period with each flow's year to date continued
/// from the cells' carry before it (same year; a cell not seen before
/// starts at its own value).
fn continued(table: DataFrame, level: Level, before: &DataFrame, kinds: LazyFrame) -> PolarsResult<DataFrame> {
    let keys = cell_keys(level);
    let columns: Vec<Expr> = table.get_column_names().into_iter().map(|c| col(c.clone())).collect();
    let mut carried = keys.clone();
    carried.push(col("ytd_value").alias("carried"));
    let on_cells = JoinArgs {
        nulls_equal: true,
        maintain_order: MaintainOrderJoin::Left,
        ..JoinArgs::new(JoinType::Left)
    };
    table
        .lazy()
        .join(before.clone().lazy().select(carried), keys.clone(), keys, on_cells)
        .join(
            kinds,
            [col("indicator")],
            [col("indicator")],
            JoinArgs {
                maintain_order: MaintainOrderJoin::Left,
                ..JoinArgs::new(JoinType::Left)
            },
        )
        .with_column(
            when(col("is_flow"))
                .then(col("ytd_value") + col("carried").fill_null(lit(0.0)))
                .otherwise(col("ytd_value"))
                .alias("ytd_value"),
        )
        .with_column((col("ytd_value") / col("quota")).alias("progress"))
        .select(columns)
        .collect()
}

/// Every cell of a level seen up to a period with its last year to date:
/// `before`'s cells, replaced by `table`'s where it has them.
fn carry_out(table: &DataFrame, level: Level, before: Option<&DataFrame>) -> PolarsResult<DataFrame> {
    let keys = cell_keys(level);
    let mut cells = keys.clone();
    cells.push(col("ytd_value"));
    let now = table.clone().lazy().select(cells.clone());
    let Some(before) = before else { return now.collect() };
    concat([before.clone().lazy(), now], UnionArgs::default())?
        .group_by_stable(keys)
        .agg([col("ytd_value").last()])
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::{config, normalized};

    /// Random text frames (nulls, ties, a prefix of another value, bytes
    /// above ASCII), many of them sorted by polars and some of those with
    /// two rows swapped: `order` says a frame is in order exactly when
    /// polars' stable sort of it by the keys leaves it as it is, and each
    /// cell once when besides no row has the cell of the row before it.
    #[test]
    fn order_is_what_polars_sort_leaves_as_it_is() {
        let mut next = crate::fixtures::random(0x2545_F491_4F6C_DD1Du64);
        let keys: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let values = [
            None,
            Some(""),
            Some("1"),
            Some("10"),
            Some("2"),
            Some("视力"),
            Some("男"),
        ];
        let (mut sorted_seen, mut unsorted_seen, mut once_seen) = (0, 0, 0);
        for _ in 0..400 {
            let rows = next(12) as usize;
            let mut cols: [Vec<Option<String>>; 3] = Default::default();
            for _ in 0..rows {
                for c in cols.iter_mut() {
                    c.push(values[next(values.len() as u64) as usize].map(String::from));
                }
            }
            let mut frame = crate::fixtures::frame(["a", "b", "c"], cols, vec![]);
            let by_polars = |f: &DataFrame| {
                f.sort(
                    keys.clone(),
                    SortMultipleOptions::default()
                        .with_nulls_last(false)
                        .with_maintain_order(true),
                )
                .unwrap()
            };
            if next(3) > 0 {
                frame = by_polars(&frame);
                if rows > 1 && next(2) == 0 {
                    let (i, j) = (next(rows as u64) as IdxSize, next(rows as u64) as IdxSize);
                    let mut order: Vec<IdxSize> = (0..rows as IdxSize).collect();
                    order.swap(i as usize, j as usize);
                    frame = frame.take(&IdxCa::from_vec("i".into(), order)).unwrap();
                }
            }
            let sorted = by_polars(&frame).equals_missing(&frame);
            // Each (a, b) on one row: no row is the row before it on both.
            let cell = |i: usize| (0..2).map(|c| frame.columns()[c].get(i).unwrap()).collect::<Vec<_>>();
            let each_once = (1..rows).all(|i| cell(i) != cell(i - 1));
            let expected = match (sorted, each_once) {
                (false, _) => Order::Unordered,
                (true, false) => Order::Ordered,
                (true, true) => Order::EachCellOnce,
            };
            assert_eq!(order(&frame, &keys, 2).unwrap(), expected, "{frame}");
            match expected {
                Order::Unordered => unsorted_seen += 1,
                Order::Ordered => sorted_seen += 1,
                Order::EachCellOnce => (sorted_seen, once_seen) = (sorted_seen + 1, once_seen + 1),
            }
        }
        assert!(
            sorted_seen > 100 && unsorted_seen > 100 && once_seen > 30 && sorted_seen - once_seen > 30,
            "{sorted_seen} {unsorted_seen} {once_seen}"
        );
        // A key that is not text: not known to be in order.
        let numbers = df!("a" => [1i64, 2]).unwrap();
        assert_eq!(order(&numbers, &["a".to_string()], 1).unwrap(), Order::Unordered);
    }

    /// Random cells (a few counties, indicators, breakdowns with nulls,
    /// periods of two years; values null, zero, -0.0 and fractions; flows,
    /// stocks and unknown kinds), sorted as the rollup sorts them: the
    /// one-pass year to date is bit for bit the window's, with one program
    /// and with two.
    #[test]
    fn year_to_date_in_one_pass_is_the_window_bit_for_bit() {
        let mut next = crate::fixtures::random(0x9E37_79B9_7F4A_7C15u64);
        let (group, sort) = running("county");
        for programs in [1, 1, 1, 2] {
            for _ in 0..100 {
                let rows = 1 + next(60) as usize;
                let mut cols: [Vec<Option<&str>>; 6] = Default::default();
                let (mut year, mut value, mut flow) = (vec![], vec![], vec![]);
                for _ in 0..rows {
                    let period = ["2025-11", "2025-12", "2026-01", "2026-02", "2026-03"][next(5) as usize];
                    cols[0].push(Some(["cdpf-monthly", "cdpf-other"][next(programs) as usize]));
                    cols[1].push(Some(["110101", "110102"][next(2) as usize]));
                    cols[2].push(Some(["A01", "A02"][next(2) as usize]));
                    cols[3].push([None, Some("视力")][next(2) as usize]);
                    cols[4].push([None, Some("男"), Some("女")][next(3) as usize]);
                    cols[5].push(Some(period));
                    year.push(period[..4].parse::<i32>().unwrap());
                    value.push(match next(6) {
                        0 => None,
                        1 => Some(-0.0),
                        2 => Some(0.1 * next(100) as f64),
                        _ => Some(next(1000) as f64 / 3.0),
                    });
                    flow.push([Some(true), Some(false), None][next(3) as usize]);
                }
                let [program, county, indicator, dimension, category, period] = cols;
                let frame = DataFrame::new_infer_height(vec![
                    Column::new("program".into(), program),
                    Column::new("county".into(), county),
                    Column::new("indicator".into(), indicator),
                    Column::new("dimension".into(), dimension),
                    Column::new("category".into(), category),
                    Column::new("period".into(), period),
                    Column::new("year".into(), year),
                    Column::new("value".into(), value),
                    Column::new("is_flow".into(), flow),
                ])
                .unwrap()
                .lazy()
                .sort(sort.clone(), SortMultipleOptions::default().with_nulls_last(false))
                // Sorted once: rows of one cell and period (which the rollup
                // never has) may come in either order from two sorts.
                .collect()
                .unwrap()
                .lazy();
                let window = frame
                    .clone()
                    .with_column(ytd_value(group.clone()).unwrap())
                    .collect()
                    .unwrap();
                let ours = with_ytd(frame, group.clone()).unwrap().collect().unwrap();
                let bits = |d: &DataFrame| -> Vec<Option<u64>> {
                    let c = d.column("ytd_value").unwrap().f64().unwrap().clone();
                    c.iter().map(|v| v.map(f64::to_bits)).collect()
                };
                assert_eq!(bits(&ours), bits(&window), "{window}");
                assert_eq!(ours.get_column_names(), window.get_column_names());
            }
        }
    }
    /// Every check of the shipped pipeline on normalized rows, as of 2026-06-01.
    fn checked(cfg: &crate::definition::Definition, n: &crate::normalize::Normalized) -> DataFrame {
        crate::fixtures::checked(cfg, n, "2026-06-01T00:00:00+08:00")
    }

    /// The embedded configuration with three counties: 全椒县 and 来安县
    /// (both 滁州市), 瑶海区 (合肥市), all 安徽省; `quotas` lines added.
    /// With a township of each county by county code.
    fn three_counties(quotas: &str) -> (crate::definition::Definition, impl Fn(&str) -> String) {
        let mut t = crate::definition::embedded_texts();
        t.registry.1 = t.registry.1.replace(
            "counties = [\"341124\"]",
            "counties = [\"341124\", \"341122\", \"340102\"]",
        );
        t.quotas[0].1.push_str(quotas);
        let cfg = crate::definition::Definition::from_texts(&t).unwrap();
        let townships = cfg.registry.townships.clone();
        let tw =
            move |county: &str| -> String { townships.values().find(|t| t.county == county).unwrap().code.clone() };
        (cfg, tw)
    }

    /// The county rollup's certificates total rows.
    fn certificates_total(
        cfg: &crate::definition::Definition,
        n: &crate::normalize::Normalized,
        checks: &DataFrame,
    ) -> DataFrame {
        county(
            &n.facts,
            checks,
            &n.submissions,
            &cfg.registry,
            &cfg.quotas,
            &cfg.catalog,
        )
        .unwrap()
        .lazy()
        .filter(
            col("indicator")
                .eq(lit("certificates_issued"))
                .and(col("dimension").is_null()),
        )
        .collect()
        .unwrap()
    }

    /// [`certs`] of `period`.
    fn certs_of(period: &str, total: i64, parts: [i64; 7]) -> serde_json::Value {
        let mut d = certs(total, parts);
        d["period"] = json!(period);
        d
    }

    /// A county's certificates issued to date in `period`, of its level's
    /// `table`.
    fn certificates_to_date(table: &DataFrame, county: &str, period: &str) -> Option<f64> {
        let row = table
            .clone()
            .lazy()
            .filter(
                col("county")
                    .eq(lit(county))
                    .and(col("period").eq(lit(period)))
                    .and(col("dimension").is_null())
                    .and(col("indicator").eq(lit("certificates_issued"))),
            )
            .collect()
            .unwrap();
        row.column("ytd_value").unwrap().f64().unwrap().get(0)
    }

    fn certs(total: i64, parts: [i64; 7]) -> serde_json::Value {
        let cats = ["视力", "听力", "言语", "肢体", "智力", "精神", "多重"];
        let mut values = vec![json!({"indicator": "残疾人证核发", "value": total})];
        for (c, v) in cats.iter().zip(parts) {
            values.push(json!({"indicator": "残疾人证核发", "category": c, "value": v}));
        }
        json!({"period": "2026-05", "values": values})
    }

    /// Random facts a report at a time (runs of one township and period,
    /// each report's rows in a random order of the breakdowns, some left
    /// out; values null, fractions and whole; units that differ within a
    /// cell; random exclusions, some of no row): the county cells of one
    /// pass equal the group-by's, bit for bit. Shuffled, or with a report
    /// coming back after another, they are the group-by's to make.
    #[test]
    fn county_cells_a_report_at_a_time_are_the_group_bys() {
        let sorted = |f: DataFrame| {
            f.lazy()
                .sort(
                    ["program", "county", "period", "indicator", "dimension", "category"],
                    SortMultipleOptions::default().with_nulls_last(false),
                )
                .collect()
                .unwrap()
        };
        let breakdowns: [(&str, Option<&str>, Option<&str>); 6] = [
            ("certificates_issued", None, None),
            ("certificates_issued", Some("类别"), Some("视力")),
            ("certificates_issued", Some("类别"), Some("听力")),
            ("certificates_issued", Some("等级"), Some("一级")),
            ("fuel_amount", None, None),
            ("fuel_amount", Some("类别"), None),
        ];
        let (mut excluded_rows, mut cells_with_exclusions, mut came_back) = (0, 0, 0);
        for seed in 1..80u64 {
            let mut r = crate::fixtures::random(seed * 2_654_435_761);
            let mut cols: [Vec<Option<String>>; 8] = Default::default();
            let (mut years, mut values) = (vec![], vec![]);
            let mut reports = vec![];
            for t in 0..(1 + r(12)) {
                for p in ["2026-05", "2026-06"] {
                    if r(4) > 0 {
                        reports.push((format!("3401{:02}{:03}", t % 3, t), p));
                    }
                }
            }
            // Reports in a random order, each once.
            for i in (1..reports.len()).rev() {
                reports.swap(i, r(i as u64 + 1) as usize);
            }
            for (t, p) in &reports {
                let program = if r(10) == 0 { "q" } else { "p" };
                let mut order: Vec<usize> = (0..breakdowns.len()).filter(|_| r(5) > 0).collect();
                if r(3) == 0 {
                    order.reverse();
                }
                if r(4) == 0 {
                    order.push(0);
                }
                for b in order {
                    let (i, d, k) = breakdowns[b];
                    let texts = [Some(program), Some(t), Some(&t[..6]), Some(p), Some(i), d, k];
                    for (c, v) in cols.iter_mut().zip(texts) {
                        c.push(v.map(str::to_string));
                    }
                    cols[7].push(Some(if r(8) == 0 { "元" } else { "人" }.to_string()));
                    years.push(Some(2026));
                    values.push(match r(5) {
                        0 => None,
                        1 => Some(r(40) as f64 / 10.0),
                        _ => Some(r(12) as f64),
                    });
                }
            }
            let facts = crate::fixtures::frame(
                [
                    "program",
                    "township",
                    "county",
                    "period",
                    "indicator",
                    "dimension",
                    "category",
                    "unit",
                ],
                cols,
                vec![Column::new("year".into(), years), Column::new("value".into(), values)],
            );
            let mut ex: [Vec<Option<String>>; 3] = Default::default();
            for (t, p) in &reports {
                if r(3) > 0 {
                    continue;
                }
                ex[0].push(Some(t.clone()));
                ex[1].push(Some(p.to_string()));
                ex[2].push(Some(
                    ["certificates_issued", "fuel_amount", "nothing"][r(3) as usize].to_string(),
                ));
            }
            ex[0].push(None);
            ex[1].push(Some("2026-06".into()));
            ex[2].push(Some("fuel_amount".into()));
            let excluded = crate::fixtures::frame(["township", "period", "indicator"], ex, vec![]);
            let got = super::county_cells_by_report(&facts, &excluded)
                .unwrap()
                .expect("a report at a time");
            let want = super::county_cells(&facts, excluded.clone()).unwrap();
            let want = want.select(got.get_column_names().into_iter().cloned()).unwrap();
            let (got, want) = (sorted(got), sorted(want));
            assert!(got.equals_missing(&want), "seed {seed}:\n{got}\n{want}");
            excluded_rows += want
                .column("townships_excluded")
                .unwrap()
                .i64()
                .unwrap()
                .iter()
                .flatten()
                .count();
            cells_with_exclusions += got
                .column("townships_included")
                .unwrap()
                .i64()
                .unwrap()
                .iter()
                .zip(got.column("value").unwrap().f64().unwrap().iter())
                .filter(|(n, v)| *n == Some(0) && v.is_none())
                .count();
            // Rows out of report order: the first row last, after another
            // report's, while its report's other rows come first.
            let key = |f: &DataFrame, i: usize| {
                ["township", "period"].map(|c| f.column(c).unwrap().get(i).unwrap().into_static())
            };
            let back = facts.slice(1, facts.height()).vstack(&facts.slice(0, 1)).unwrap();
            let other = (0..facts.height()).any(|i| key(&facts, i) != key(&facts, 0));
            if other && key(&back, 0) == key(&facts, 0) {
                assert!(
                    super::county_cells_by_report(&back, &excluded).unwrap().is_none(),
                    "seed {seed}"
                );
                came_back += 1;
            }
        }
        assert!(excluded_rows > 50, "exclusions are drawn: {excluded_rows}");
        assert!(
            cells_with_exclusions > 5,
            "cells whose every township is excluded: {cells_with_exclusions}"
        );
        assert!(came_back > 10, "reports that come back: {came_back}");
    }

    #[test]
    fn excluded_township_is_counted_not_summed() {
        let cfg = config();
        // 101 = 12+13+4+63+7+2 (+0 多重) holds; 20 ≠ 18 fails.
        let n = normalized(
            &cfg,
            &[
                ("341124100", "2026-05", certs(101, [12, 13, 4, 63, 7, 2, 0])),
                ("341124101", "2026-05", certs(20, [3, 3, 3, 3, 3, 3, 0])),
                ("341124104", "2026-05", certs(7, [1, 1, 1, 1, 1, 1, 1])),
            ],
        );
        let checks = checked(&cfg, &n);
        let breakdown = checks
            .clone()
            .lazy()
            .filter(col("rule").eq(lit("breakdown")))
            .collect()
            .unwrap();
        assert_eq!(breakdown.height(), 1);
        assert_eq!(
            breakdown.column("township").unwrap().str().unwrap().get(0),
            Some("341124101")
        );

        let total = certificates_total(&cfg, &n, &checks);
        assert_eq!(total.height(), 1);
        let get_i = |c: &str| total.column(c).unwrap().i64().unwrap().get(0);
        assert_eq!(total.column("value").unwrap().f64().unwrap().get(0), Some(108.0));
        assert_eq!(get_i("townships_excluded"), Some(1));
        assert_eq!(get_i("townships_included"), Some(2));
        assert_eq!(get_i("townships_reporting"), Some(3));
        assert_eq!(get_i("townships_expected"), Some(10));
        assert_eq!(total.column("quota").unwrap().f64().unwrap().get(0), Some(1200.0));
        assert_eq!(
            total.column("progress").unwrap().f64().unwrap().get(0),
            Some(108.0 / 1200.0)
        );
    }

    #[test]
    fn each_level_sums_the_one_below_with_its_own_counts_and_quotas() {
        let (cfg, tw) = three_counties("2026,341122,certificates_issued,300\n");
        let n = normalized(
            &cfg,
            &[
                ("341124100", "2026-05", certs(101, [12, 13, 4, 63, 7, 2, 0])),
                ("341124101", "2026-05", certs(20, [3, 3, 3, 3, 3, 3, 0])), // excluded
                (&tw("341122"), "2026-05", certs(7, [1, 1, 1, 1, 1, 1, 1])),
                (&tw("340102"), "2026-05", certs(5, [5, 0, 0, 0, 0, 0, 0])),
            ],
        );
        let checks = checked(&cfg, &n);
        let levels = crate::fixtures::levels(&cfg, &n, &checks);
        let total = |df: &DataFrame, area: Option<(&str, &str)>| {
            let mut pred = col("indicator")
                .eq(lit("certificates_issued"))
                .and(col("dimension").is_null());
            if let Some((c, v)) = area {
                pred = pred.and(col(c).eq(lit(v)));
            }
            let r = df.clone().lazy().filter(pred).collect().unwrap();
            assert_eq!(r.height(), 1, "{r}");
            let i = |c: &str| r.column(c).unwrap().i64().unwrap().get(0).unwrap();
            let f = |c: &str| r.column(c).unwrap().f64().unwrap().get(0);
            (
                f("value"),
                i("townships_expected"),
                i("townships_reporting"),
                i("townships_included"),
                i("townships_excluded"),
                f("quota"),
            )
        };
        let expected = |county: &str| cfg.registry.townships.values().filter(|t| t.county == county).count() as i64;
        let (e124, e122, e102) = (expected("341124"), expected("341122"), expected("340102"));
        let [county, city, province, nation] = &levels;
        assert_eq!(
            total(county, Some(("county", "341124"))),
            (Some(101.0), e124, 2, 1, 1, Some(1200.0))
        );
        assert_eq!(
            total(city, Some(("city", "3411"))),
            (Some(108.0), e124 + e122, 3, 2, 1, Some(1500.0))
        );
        // 瑶海区 has no quota: 合肥市's would be partial, so it is null.
        assert_eq!(total(city, Some(("city", "3401"))), (Some(5.0), e102, 1, 1, 0, None));
        assert_eq!(
            total(province, Some(("province", "34"))),
            (Some(113.0), e124 + e122 + e102, 4, 3, 1, None)
        );
        assert_eq!(total(nation, None), total(province, Some(("province", "34"))));
        assert_eq!(city.column("city_name").unwrap().str().unwrap().get(0), Some("合肥市"));
        assert!(nation.column("province").is_err(), "the nation has no area columns");
    }

    #[test]
    fn periods_rolled_up_one_at_a_time_with_the_carry_equal_all_periods_at_once() {
        // What a run does when each period's rollup is its own: the year to
        // date continues from the period before, a cell missing some months
        // continues from the last one it had, a new year starts again.
        let (cfg, tw) = three_counties("");
        let (t122, t102) = (tw("341122"), tw("340102"));
        let docs = vec![
            ("341124100", "2025-12", certs_of("2025-12", 6, [1, 1, 1, 1, 1, 1, 0])),
            ("341124100", "2026-01", certs_of("2026-01", 7, [1, 1, 1, 1, 1, 1, 1])),
            ("341124101", "2026-01", certs_of("2026-01", 3, [3, 0, 0, 0, 0, 0, 0])),
            (t122.as_str(), "2026-01", certs_of("2026-01", 2, [0, 2, 0, 0, 0, 0, 0])),
            ("341124100", "2026-02", certs_of("2026-02", 5, [0, 0, 0, 5, 0, 0, 0])),
            // Fails its breakdown: excluded.
            ("341124101", "2026-02", certs_of("2026-02", 9, [1, 1, 1, 1, 1, 1, 1])),
            (t102.as_str(), "2026-02", certs_of("2026-02", 4, [4, 0, 0, 0, 0, 0, 0])),
            ("341124100", "2026-03", certs_of("2026-03", 1, [0, 0, 0, 0, 0, 0, 1])),
            (t122.as_str(), "2026-03", certs_of("2026-03", 8, [0, 0, 8, 0, 0, 0, 0])),
        ];
        let n = normalized(&cfg, &docs);
        let checks = checked(&cfg, &n);
        let all = crate::fixtures::levels(&cfg, &n, &checks);
        let sorted = |df: &DataFrame, level: Level| {
            let mut by: Vec<&str> = level.code.into_iter().collect();
            by.extend(["period", "indicator", "dimension", "category"]);
            df.clone()
                .lazy()
                .sort(by, SortMultipleOptions::default().with_nulls_last(false))
                .collect()
                .unwrap()
        };
        let of = |df: &DataFrame, p: &str| df.clone().lazy().filter(col("period").eq(lit(p))).collect().unwrap();
        let mut before: Option<[DataFrame; 4]> = None;
        for p in ["2025-12", "2026-01", "2026-02", "2026-03"] {
            let county_p = county(
                &of(&n.facts, p),
                &of(&checks, p),
                &of(&n.submissions, p),
                &cfg.registry,
                &cfg.quotas,
                &cfg.catalog,
            )
            .unwrap();
            let (tables, carry) = period_levels(
                county_p,
                &of(&n.submissions, p),
                &cfg.registry,
                &cfg.quotas,
                &cfg.catalog,
                before.as_ref(),
            )
            .unwrap();
            for ((level, one), whole) in LEVELS.iter().zip(&tables).zip(&all) {
                assert_eq!(
                    sorted(one, *level),
                    sorted(&of(whole, p), *level),
                    "{} {p}",
                    level.table
                );
            }
            before = Some(carry);
        }
        // The year to date did run on: 全椒县's March total continues
        // January's and February's (the excluded township left out).
        assert_eq!(
            certificates_to_date(&all[0], "341124", "2026-03"),
            Some(7.0 + 3.0 + 5.0 + 1.0)
        );
    }

    /// County rows of several periods come to `levels_up` in any order
    /// (a batch of each period stacked after another): they are put in
    /// the order the year to date runs in, and every level is what the
    /// county rows in that order give.
    #[test]
    fn county_rows_out_of_order_roll_up_as_in_order() {
        let (cfg, tw) = three_counties("");
        let t122 = tw("341122");
        let docs = vec![
            ("341124100", "2026-01", certs_of("2026-01", 7, [1, 1, 1, 1, 1, 1, 1])),
            (t122.as_str(), "2026-01", certs_of("2026-01", 2, [0, 2, 0, 0, 0, 0, 0])),
            ("341124100", "2026-02", certs_of("2026-02", 5, [0, 0, 0, 5, 0, 0, 0])),
            (t122.as_str(), "2026-03", certs_of("2026-03", 8, [0, 0, 8, 0, 0, 0, 0])),
            ("341124100", "2026-03", certs_of("2026-03", 1, [0, 0, 0, 0, 0, 0, 1])),
        ];
        let n = normalized(&cfg, &docs);
        let checks = checked(&cfg, &n);
        let rows = county(
            &n.facts,
            &checks,
            &n.submissions,
            &cfg.registry,
            &cfg.quotas,
            &cfg.catalog,
        )
        .unwrap();
        let (_, sort) = running("county");
        assert_eq!(order(&rows, &sort, CELL_KEYS).unwrap(), Order::Ordered);
        let reversed = rows.reverse();
        assert_eq!(order(&reversed, &sort, CELL_KEYS).unwrap(), Order::Unordered);
        // One period's rows, a cell each: as they are.
        let march = rows
            .clone()
            .lazy()
            .filter(col("period").eq(lit("2026-03")))
            .collect()
            .unwrap();
        assert_eq!(order(&march, &sort, CELL_KEYS).unwrap(), Order::EachCellOnce);
        let ctx = Context::new(&n.submissions, &cfg.registry, &cfg.quotas, &cfg.catalog).unwrap();
        let as_is = ctx.years_to_date(march.clone(), LEVELS[0]).unwrap();
        assert!(as_is.equals_missing(&march));
        let up = |rows: DataFrame| levels_up(rows, &n.submissions, &cfg.registry, &cfg.quotas, &cfg.catalog).unwrap();
        let (in_order_levels, reversed_levels) = (up(rows.clone()), up(reversed));
        for (level, (a, b)) in LEVELS.iter().zip(in_order_levels.iter().zip(&reversed_levels)) {
            assert!(a.equals_missing(b), "{}:\n{a}\n{b}", level.table);
        }
        // March's year to date ran over January and February.
        assert_eq!(
            certificates_to_date(&in_order_levels[0], "341124", "2026-03"),
            Some(7.0 + 5.0 + 1.0)
        );
    }

    #[test]
    fn a_cell_whose_townships_are_all_excluded_still_appears() {
        let cfg = config();
        // The only township reporting May certificates fails its breakdown.
        let n = normalized(&cfg, &[("341124101", "2026-05", certs(20, [3, 3, 3, 3, 3, 3, 0]))]);
        let checks = checked(&cfg, &n);
        let total = certificates_total(&cfg, &n, &checks);
        assert_eq!(total.height(), 1, "the cell is kept");
        let get_i = |c: &str| total.column(c).unwrap().i64().unwrap().get(0);
        assert_eq!(total.column("value").unwrap().f64().unwrap().get(0), None, "not 0");
        assert_eq!(get_i("townships_included"), Some(0));
        assert_eq!(get_i("townships_excluded"), Some(1));
        assert_eq!(get_i("townships_reporting"), Some(1));
    }

    #[test]
    fn force_submitted_explanation_lets_the_value_through() {
        let cfg = config();
        let mut doc = certs(20, [3, 3, 3, 3, 3, 3, 0]);
        doc["explanation"] = json!("2 certificates re-issued after appeal, category pending");
        let n = normalized(&cfg, &[("341124101", "2026-05", doc)]);
        let checks = checked(&cfg, &n);
        let bd = checks
            .clone()
            .lazy()
            .filter(col("rule").eq(lit("breakdown")))
            .collect()
            .unwrap();
        assert_eq!(bd.column("excluded").unwrap().bool().unwrap().get(0), Some(false));
        assert!(
            bd.column("explanation")
                .unwrap()
                .str()
                .unwrap()
                .get(0)
                .unwrap()
                .contains("appeal")
        );
        let total = certificates_total(&cfg, &n, &checks);
        assert_eq!(total.column("value").unwrap().f64().unwrap().get(0), Some(20.0));
    }
}
