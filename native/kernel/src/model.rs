//! The kernel's state and events: the same data as `domain.exchange.Exchange`, with every
//! identifier interned to a `u32` and every amount an `i128`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::PyString;

use crate::dec::Dec;

// ------------------------------------------------------------------ a fast hasher (FxHash)
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(SEED);
    }
}
impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let mut last = 0u64;
        for (i, b) in chunks.remainder().iter().enumerate() {
            last |= (*b as u64) << (8 * i);
        }
        self.add(last ^ (bytes.len() as u64) << 56);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64)
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64)
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i)
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64)
    }
    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits: mix the high bits down (fmix64)
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

// ------------------------------------------------------------------ strings
/// Interned identifiers (accounts, symbols, assets, order and client order ids): the text of
/// all of them in one buffer, an open-addressing table of ids (with their hashes, so a miss
/// hashes once and compares no text), and each id's Python string once one exists.
#[derive(Default)]
pub struct Interner {
    text: String,
    spans: Vec<(u32, u32)>,
    table: Vec<(u32, u32)>, // (id + 1, low 32 bits of the hash); (0, _) is empty
    pub py: Vec<GILOnceCell<Py<PyString>>>,
    obj_cache: Vec<Option<(Py<PyString>, u32)>>, // recently found objects (direct-mapped)
}

const OBJ_CACHE: usize = 256;

#[inline]
fn hash_str(s: &str) -> u64 {
    let mut h = Fx::default();
    h.write(s.as_bytes());
    h.finish()
}

impl Interner {
    /// Where `s` is or would go: `Ok(id)` or `Err(slot)`.
    #[inline]
    fn find(&self, s: &str, h: u32) -> Result<u32, usize> {
        let mask = self.table.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let (id1, hh) = self.table[i];
            if id1 == 0 {
                return Err(i);
            }
            if hh == h && self.s(id1 - 1) == s {
                return Ok(id1 - 1);
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let size = (self.table.len() * 2).max(64);
        let mut table = vec![(0u32, 0u32); size];
        let mask = size - 1;
        for &(id1, h) in &self.table {
            if id1 != 0 {
                let mut i = h as usize & mask;
                while table[i].0 != 0 {
                    i = (i + 1) & mask;
                }
                table[i] = (id1, h);
            }
        }
        self.table = table;
    }

    fn lookup(&mut self, s: &str) -> (u32, Result<u32, usize>) {
        if (self.spans.len() + 1) * 2 > self.table.len() {
            self.grow();
        }
        let h = hash_str(s) as u32;
        (h, self.find(s, h))
    }

    fn add(&mut self, s: &str, h: u32, slot: usize, py: GILOnceCell<Py<PyString>>) -> u32 {
        let id = self.spans.len() as u32;
        self.spans.push((self.text.len() as u32, s.len() as u32));
        self.text.push_str(s);
        self.py.push(py);
        self.table[slot] = (id + 1, h);
        id
    }

    pub fn intern(&mut self, s: &str) -> u32 {
        match self.lookup(s) {
            (_, Ok(id)) => id,
            (h, Err(slot)) => self.add(s, h, slot, GILOnceCell::new()),
        }
    }

    pub fn intern_py(&mut self, obj: &Bound<'_, PyString>) -> PyResult<u32> {
        // the same string object as a recent hit (accounts and symbols recur): its id,
        // without hashing or comparing text. The cache holds the object, so an equal
        // pointer is the same object, hence the same text.
        let p = obj.as_ptr() as usize;
        let c = (p >> 4).wrapping_mul(0x9E37_79B9) >> 24 & (OBJ_CACHE - 1);
        if self.obj_cache.is_empty() {
            self.obj_cache = (0..OBJ_CACHE).map(|_| None).collect();
        }
        if let Some((o, id)) = &self.obj_cache[c] {
            if o.as_ptr() as usize == p {
                return Ok(*id);
            }
        }
        let s = obj.to_str()?;
        Ok(match self.lookup(s) {
            (_, Ok(id)) => {
                self.obj_cache[c] = Some((obj.clone().unbind(), id));
                id
            }
            (h, Err(slot)) => {
                let cell = GILOnceCell::new();
                let _ = cell.set(obj.py(), obj.clone().unbind());
                self.add(s, h, slot, cell)
            }
        })
    }

    /// Ask the CPU to load `s`'s first table slot (a hint: no effect on results).
    #[inline]
    pub fn prefetch(&self, s: &str) {
        if self.table.is_empty() {
            return;
        }
        let i = hash_str(s) as u32 as usize & (self.table.len() - 1);
        #[cfg(target_arch = "x86_64")]
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch(self.table.as_ptr().add(i) as *const i8, _MM_HINT_T0);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        self.find(s, hash_str(s) as u32).ok()
    }

    #[inline]
    pub fn s(&self, id: u32) -> &str {
        let (at, len) = self.spans[id as usize];
        &self.text[at as usize..(at + len) as usize]
    }

    pub fn py(&self, py: Python<'_>, id: u32) -> *mut pyo3::ffi::PyObject {
        let cell = &self.py[id as usize];
        let obj = cell.get_or_init(py, || PyString::new_bound(py, self.s(id)).unbind());
        obj.clone_ref(py).into_ptr()
    }
}

/// A string that is not interned (command ids, details), with its Python object if known.
/// Made from a Python string, the text is that object's own UTF-8 (not copied): CPython
/// keeps it for as long as the object lives, and `py` holds the object.
pub struct RStr {
    ptr: *const u8,
    len: usize,
    _own: Option<Box<str>>, // the text, when not the Python object's
    pub py: GILOnceCell<Py<PyString>>,
}

// SAFETY: the text is immutable and owned by `_own` or by the Python string held in `py`
// (never replaced once set), neither of which moves it.
unsafe impl Send for RStr {}
unsafe impl Sync for RStr {}

impl RStr {
    pub fn own(s: &str) -> RStr {
        let b: Box<str> = s.into();
        RStr { ptr: b.as_ptr(), len: b.len(), _own: Some(b), py: GILOnceCell::new() }
    }
    pub fn new(s: &str) -> Arc<RStr> {
        Arc::new(RStr::own(s))
    }
    pub fn from_py(obj: &Bound<'_, PyString>) -> PyResult<Arc<RStr>> {
        Ok(Arc::new(RStr::inline_from_py(obj)?))
    }
    pub fn inline_from_py(obj: &Bound<'_, PyString>) -> PyResult<RStr> {
        let s = obj.to_str()?; // PyUnicode_AsUTF8AndSize: the object's own buffer
        let r = RStr { ptr: s.as_ptr(), len: s.len(), _own: None, py: GILOnceCell::new() };
        let _ = r.py.set(obj.py(), obj.clone().unbind());
        Ok(r)
    }
    #[inline]
    pub fn s(&self) -> &str {
        // SAFETY: see the type's comment; valid UTF-8 from a `&str`
        unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(self.ptr, self.len)) }
    }
    /// This string, moved out of an `Arc` it is alone in (else copied, without the object).
    fn unwrap(rc: Arc<RStr>) -> RStr {
        Arc::try_unwrap(rc).unwrap_or_else(|rc| RStr::own(rc.s()))
    }
    pub fn py(&self, py: Python<'_>) -> *mut pyo3::ffi::PyObject {
        self.py.get_or_init(py, || PyString::new_bound(py, self.s()).unbind()).clone_ref(py).into_ptr()
    }
}

/// A `Decimal` carried by an event: its `str()` and the Python object when known.
pub struct DecV {
    pub text: Box<str>,
    pub py: GILOnceCell<PyObject>,
}

impl DecV {
    pub fn new(text: &str) -> Arc<DecV> {
        Arc::new(DecV { text: text.into(), py: GILOnceCell::new() })
    }
    pub fn with_py(text: String, obj: Bound<'_, PyAny>) -> Arc<DecV> {
        let d = DecV { text: text.into(), py: GILOnceCell::new() };
        let _ = d.py.set(obj.py(), obj.unbind());
        Arc::new(d)
    }
}

pub struct Meta {
    pub cid: RStr,
    pub corr: RStr,
    pub ts: i128,
    /// the command's own `timestamp_ns` object when it is an exact `int` (shared by events)
    pub ts_py: Option<PyObject>,
}

impl Meta {
    pub fn new(cid: RStr, corr: RStr, ts: i128) -> Meta {
        Meta { cid, corr, ts, ts_py: None }
    }
}

// ------------------------------------------------------------------ enums (indices)
pub const SIDE: u8 = 0;
pub const OTYPE: u8 = 1;
pub const TIF: u8 = 2;
pub const STP: u8 = 3;
pub const REASON: u8 = 4;
pub const CANCEL: u8 = 5;

pub const ENUM_VALUES: [&[&str]; 6] = [
    &["buy", "sell"],
    &["limit", "market"],
    &["gtc", "ioc", "fok"],
    &["cancel_taker", "cancel_maker", "cancel_both"],
    &[
        "insufficient_funds", "tick_size", "lot_size", "min_qty", "max_qty", "price_band",
        "post_only_would_take", "amend_would_take", "unknown_symbol", "unknown_account",
        "unknown_asset", "trading_halted", "duplicate_client_order_id", "duplicate_order_id",
        "unknown_order", "not_order_owner", "invalid_quantity", "invalid_price",
        "invalid_amount", "invalid_time_in_force", "invalid_post_only",
        "invalid_client_order_id", "nothing_to_amend", "account_exists", "instrument_exists",
        "invalid_instrument", "asset_decimals_mismatch", "already_halted", "not_halted",
    ],
    &[
        "requested", "ioc_remainder", "fok_unfilled", "self_trade_prevention",
        "market_no_liquidity", "budget_exhausted", "cancel_all",
    ],
];
pub const ENUM_NAMES: [&str; 6] =
    ["Side", "OrderType", "TimeInForce", "SelfTradePrevention", "Reason", "CancelReason"];

pub const BUY: u8 = 0;
pub const LIMIT: u8 = 0;
pub const GTC: u8 = 0;
pub const FOK: u8 = 2;
pub const CANCEL_TAKER: u8 = 0;
pub const CANCEL_MAKER: u8 = 1;

pub const R_INSUFFICIENT_FUNDS: u8 = 0;
pub const R_TICK_SIZE: u8 = 1;
pub const R_LOT_SIZE: u8 = 2;
pub const R_MIN_QTY: u8 = 3;
pub const R_MAX_QTY: u8 = 4;
pub const R_PRICE_BAND: u8 = 5;
pub const R_POST_ONLY_WOULD_TAKE: u8 = 6;
pub const R_AMEND_WOULD_TAKE: u8 = 7;
pub const R_UNKNOWN_SYMBOL: u8 = 8;
pub const R_UNKNOWN_ACCOUNT: u8 = 9;
pub const R_UNKNOWN_ASSET: u8 = 10;
pub const R_TRADING_HALTED: u8 = 11;
pub const R_DUPLICATE_CLIENT_ORDER_ID: u8 = 12;
pub const R_DUPLICATE_ORDER_ID: u8 = 13;
pub const R_UNKNOWN_ORDER: u8 = 14;
pub const R_NOT_ORDER_OWNER: u8 = 15;
pub const R_INVALID_QUANTITY: u8 = 16;
pub const R_INVALID_PRICE: u8 = 17;
pub const R_INVALID_AMOUNT: u8 = 18;
pub const R_INVALID_TIME_IN_FORCE: u8 = 19;
pub const R_INVALID_POST_ONLY: u8 = 20;
pub const R_INVALID_CLIENT_ORDER_ID: u8 = 21;
pub const R_NOTHING_TO_AMEND: u8 = 22;
pub const R_ACCOUNT_EXISTS: u8 = 23;
pub const R_INSTRUMENT_EXISTS: u8 = 24;
pub const R_INVALID_INSTRUMENT: u8 = 25;
pub const R_ASSET_DECIMALS_MISMATCH: u8 = 26;
pub const R_ALREADY_HALTED: u8 = 27;
pub const R_NOT_HALTED: u8 = 28;

pub const C_REQUESTED: u8 = 0;
pub const C_IOC_REMAINDER: u8 = 1;
pub const C_FOK_UNFILLED: u8 = 2;
pub const C_SELF_TRADE_PREVENTION: u8 = 3;
pub const C_MARKET_NO_LIQUIDITY: u8 = 4;
pub const C_BUDGET_EXHAUSTED: u8 = 5;
pub const C_CANCEL_ALL: u8 = 6;

// ------------------------------------------------------------------ events
pub const EVENT_NAMES: [&str; 14] = [
    "InstrumentListed", "TradingHalted", "TradingResumed", "AccountOpened", "FundsDeposited",
    "FundsWithdrawn", "WithdrawalRejected", "OrderAccepted", "OrderRejected", "OrderRested",
    "TradeExecuted", "OrderCanceled", "OrderAmended", "CommandRejected",
];

/// What a field holds: `S` interned id, `R` plain string, `I` int, `B` bool, `E(kind)` enum
/// member, `D` Decimal.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FK {
    S,
    R,
    I,
    B,
    E(u8),
    D,
}

use FK::*;
const M: [(&str, FK); 3] = [("command_id", R), ("correlation_id", R), ("timestamp_ns", I)];

/// Dataclass fields of every event class, in order (checked against Python at start-up).
pub fn event_fields(cls: usize) -> Vec<(&'static str, FK)> {
    let rest: &[(&str, FK)] = match cls {
        0 => &[
            ("symbol", S), ("base", S), ("quote", S), ("base_decimals", I),
            ("quote_decimals", I), ("tick_size", D), ("lot_size", D), ("min_qty", D),
            ("max_qty", D), ("reference_price", D), ("price_band_bps", I),
            ("maker_fee_bps", I), ("taker_fee_bps", I),
        ],
        1 | 2 => &[("symbol", S)],
        3 => &[("account_id", S)],
        4 | 5 => &[("account_id", S), ("asset", S), ("amount_atoms", I)],
        6 => &[("account_id", S), ("asset", S), ("requested", D), ("reason", E(REASON))],
        7 => &[
            ("order_id", S), ("account_id", S), ("symbol", S), ("client_order_id", S),
            ("side", E(SIDE)), ("order_type", E(OTYPE)), ("time_in_force", E(TIF)),
            ("post_only", B), ("stp", E(STP)), ("price_ticks", I), ("qty_lots", I),
            ("quote_budget_atoms", I), ("reserved_asset", S), ("reserved_atoms", I),
        ],
        8 => &[
            ("order_id", S), ("account_id", S), ("symbol", S), ("client_order_id", S),
            ("reason", E(REASON)),
        ],
        9 => &[
            ("order_id", S), ("account_id", S), ("symbol", S), ("side", E(SIDE)),
            ("price_ticks", I), ("qty_lots", I),
        ],
        10 => &[
            ("symbol", S), ("trade_id", I), ("price_ticks", I), ("qty_lots", I),
            ("notional_atoms", I), ("maker_order_id", S), ("taker_order_id", S),
            ("maker_account_id", S), ("taker_account_id", S), ("taker_side", E(SIDE)),
            ("maker_fee_atoms", I), ("taker_fee_atoms", I),
        ],
        11 => &[
            ("order_id", S), ("account_id", S), ("symbol", S), ("reason", E(CANCEL)),
            ("remaining_lots", I), ("released_asset", S), ("released_atoms", I),
        ],
        12 => &[
            ("order_id", S), ("account_id", S), ("symbol", S), ("old_price_ticks", I),
            ("new_price_ticks", I), ("old_qty_lots", I), ("new_qty_lots", I),
            ("priority_kept", B), ("reserved_atoms", I),
        ],
        _ => &[("command_type", R), ("subject", S), ("reason", E(REASON)), ("detail", R)],
    };
    M.iter().chain(rest.iter()).copied().collect()
}

#[derive(Clone)]
pub struct Listed {
    pub sym: u32,
    pub base: u32,
    pub quote: u32,
    pub bdec: i128,
    pub qdec: i128,
    pub tick: Arc<DecV>,
    pub lot: Arc<DecV>,
    pub min: Arc<DecV>,
    pub max: Arc<DecV>,
    pub refp: Arc<DecV>,
    pub band: i128,
    pub maker: i128,
    pub taker: i128,
}

#[derive(Clone)]
pub enum K {
    Listed(Arc<Listed>),
    Halted(u32),
    Resumed(u32),
    Opened(u32),
    Deposited(u32, u32, i128),
    Withdrawn(u32, u32, i128),
    WithdrawRej { acc: u32, asset: u32, requested: Arc<DecV>, reason: u8 },
    Accepted {
        oid: u32, acc: u32, sym: u32, coid: u32, side: u8, otype: u8, tif: u8,
        post_only: bool, stp: u8, price: i128, qty: i128, budget: i128, asset: u32,
        reserved: i128,
    },
    Rejected { oid: u32, acc: u32, sym: u32, coid: u32, reason: u8 },
    Rested { oid: u32, acc: u32, sym: u32, side: u8, price: i128, qty: i128 },
    Trade {
        sym: u32, trade_id: i128, price: i128, qty: i128, notional: i128, maker_oid: u32,
        taker_oid: u32, maker_acc: u32, taker_acc: u32, taker_side: u8, maker_fee: i128,
        taker_fee: i128,
    },
    Canceled {
        oid: u32, acc: u32, sym: u32, reason: u8, remaining: i128, asset: u32, released: i128,
    },
    Amended {
        oid: u32, acc: u32, sym: u32, old_price: i128, new_price: i128, old_qty: i128,
        new_qty: i128, kept: bool, reserved: i128,
    },
    CmdRejected { ctype: Arc<RStr>, subject: u32, reason: u8, detail: Arc<RStr> },
}

#[derive(Clone)]
pub struct Ev {
    pub m: Arc<Meta>,
    pub k: K,
}

/// The most fields an event class has (`OrderAccepted`).
pub const MAX_FIELDS: usize = 17;

/// An event's field values, in dataclass order, without a heap allocation (and without
/// initialising the unused slots: this runs twice for every event).
pub struct Vals<'a> {
    v: [std::mem::MaybeUninit<V<'a>>; MAX_FIELDS],
    pub n: usize,
}

impl<'a> Vals<'a> {
    #[inline(always)]
    fn push(&mut self, v: V<'a>) {
        self.v[self.n] = std::mem::MaybeUninit::new(v);
        self.n += 1;
    }
    #[inline(always)]
    fn extend_from_slice(&mut self, vs: &[V<'a>]) {
        assert!(self.n + vs.len() <= MAX_FIELDS);
        for (i, v) in vs.iter().enumerate() {
            self.v[self.n + i] = std::mem::MaybeUninit::new(*v);
        }
        self.n += vs.len();
    }
    #[inline(always)]
    pub fn as_slice(&self) -> &[V<'a>] {
        // SAFETY: the first `n` slots were written (V is Copy: nothing to drop)
        unsafe { std::slice::from_raw_parts(self.v.as_ptr() as *const V<'a>, self.n) }
    }
}

/// One field value, for building the Python object or writing JSON (16 bytes: amounts are
/// referenced, not copied).
#[derive(Clone, Copy)]
pub enum V<'a> {
    Id(u32),
    R(&'a RStr),
    I(&'a i128),
    B(bool),
    E(u8, u8),
    D(&'a DecV),
}

impl Ev {
    pub fn cls(&self) -> usize {
        match self.k {
            K::Listed(_) => 0,
            K::Halted(_) => 1,
            K::Resumed(_) => 2,
            K::Opened(_) => 3,
            K::Deposited(..) => 4,
            K::Withdrawn(..) => 5,
            K::WithdrawRej { .. } => 6,
            K::Accepted { .. } => 7,
            K::Rejected { .. } => 8,
            K::Rested { .. } => 9,
            K::Trade { .. } => 10,
            K::Canceled { .. } => 11,
            K::Amended { .. } => 12,
            K::CmdRejected { .. } => 13,
        }
    }

    /// Field values in dataclass order (see `event_fields`).
    #[inline(always)]
    pub fn values(&self) -> Vals<'_> {
        let mut out = Vals { v: [std::mem::MaybeUninit::uninit(); MAX_FIELDS], n: 0 };
        self.fill(&mut out);
        out
    }

    #[inline(always)]
    fn fill<'a>(&'a self, out: &mut Vals<'a>) {
        out.push(V::R(&self.m.cid));
        out.push(V::R(&self.m.corr));
        out.push(V::I(&self.m.ts));
        match &self.k {
            K::Listed(l) => out.extend_from_slice(&[
                V::Id(l.sym), V::Id(l.base), V::Id(l.quote), V::I(&l.bdec), V::I(&l.qdec),
                V::D(&l.tick), V::D(&l.lot), V::D(&l.min), V::D(&l.max), V::D(&l.refp),
                V::I(&l.band), V::I(&l.maker), V::I(&l.taker),
            ]),
            K::Halted(s) | K::Resumed(s) | K::Opened(s) => out.push(V::Id(*s)),
            K::Deposited(a, s, n) | K::Withdrawn(a, s, n) => {
                out.extend_from_slice(&[V::Id(*a), V::Id(*s), V::I(n)])
            }
            K::WithdrawRej { acc, asset, requested, reason } => out.extend_from_slice(&[
                V::Id(*acc), V::Id(*asset), V::D(requested), V::E(REASON, *reason),
            ]),
            K::Accepted {
                oid, acc, sym, coid, side, otype, tif, post_only, stp, price, qty, budget,
                asset, reserved,
            } => out.extend_from_slice(&[
                V::Id(*oid), V::Id(*acc), V::Id(*sym), V::Id(*coid), V::E(SIDE, *side),
                V::E(OTYPE, *otype), V::E(TIF, *tif), V::B(*post_only), V::E(STP, *stp),
                V::I(price), V::I(qty), V::I(budget), V::Id(*asset), V::I(reserved),
            ]),
            K::Rejected { oid, acc, sym, coid, reason } => out.extend_from_slice(&[
                V::Id(*oid), V::Id(*acc), V::Id(*sym), V::Id(*coid), V::E(REASON, *reason),
            ]),
            K::Rested { oid, acc, sym, side, price, qty } => out.extend_from_slice(&[
                V::Id(*oid), V::Id(*acc), V::Id(*sym), V::E(SIDE, *side), V::I(price),
                V::I(qty),
            ]),
            K::Trade {
                sym, trade_id, price, qty, notional, maker_oid, taker_oid, maker_acc,
                taker_acc, taker_side, maker_fee, taker_fee,
            } => out.extend_from_slice(&[
                V::Id(*sym), V::I(trade_id), V::I(price), V::I(qty), V::I(notional),
                V::Id(*maker_oid), V::Id(*taker_oid), V::Id(*maker_acc), V::Id(*taker_acc),
                V::E(SIDE, *taker_side), V::I(maker_fee), V::I(taker_fee),
            ]),
            K::Canceled { oid, acc, sym, reason, remaining, asset, released } => out
                .extend_from_slice(&[
                    V::Id(*oid), V::Id(*acc), V::Id(*sym), V::E(CANCEL, *reason),
                    V::I(remaining), V::Id(*asset), V::I(released),
                ]),
            K::Amended {
                oid, acc, sym, old_price, new_price, old_qty, new_qty, kept, reserved,
            } => out.extend_from_slice(&[
                V::Id(*oid), V::Id(*acc), V::Id(*sym), V::I(old_price), V::I(new_price),
                V::I(old_qty), V::I(new_qty), V::B(*kept), V::I(reserved),
            ]),
            K::CmdRejected { ctype, subject, reason, detail } => out.extend_from_slice(&[
                V::R(ctype), V::Id(*subject), V::E(REASON, *reason), V::R(detail),
            ]),
        }
    }
}

/// The decoded value of one field (payload or Python object) before an `Ev` is assembled.
#[derive(Clone)]
pub enum DV {
    Id(u32),
    R(Arc<RStr>),
    I(i128),
    B(bool),
    E(u8),
    D(Arc<DecV>),
}

impl DV {
    fn id(&self) -> u32 {
        if let DV::Id(v) = self { *v } else { unreachable!() }
    }
    fn r(&self) -> Arc<RStr> {
        if let DV::R(v) = self { v.clone() } else { unreachable!() }
    }
    fn into_r(self) -> Arc<RStr> {
        if let DV::R(v) = self { v } else { unreachable!() }
    }
    fn i(&self) -> i128 {
        if let DV::I(v) = self { *v } else { unreachable!() }
    }
    fn b(&self) -> bool {
        if let DV::B(v) = self { *v } else { unreachable!() }
    }
    fn e(&self) -> u8 {
        if let DV::E(v) = self { *v } else { unreachable!() }
    }
    fn d(&self) -> Arc<DecV> {
        if let DV::D(v) = self { v.clone() } else { unreachable!() }
    }
}

/// Assemble an event of class `cls` from its decoded fields (in dataclass order).
pub fn assemble(cls: usize, mut v: Vec<DV>) -> Ev {
    let mut take = |i: usize| RStr::unwrap(std::mem::replace(&mut v[i], DV::B(false)).into_r());
    let (cid, corr) = (take(0), take(1));
    let m = Arc::new(Meta::new(cid, corr, v[2].i()));
    Ev { m, k: assemble_k(cls, &v[3..]) }
}

/// The class-specific part of an event of class `cls` (its fields after the metadata).
pub fn assemble_k(cls: usize, f: &[DV]) -> K {
    match cls {
        0 => K::Listed(Arc::new(Listed {
            sym: f[0].id(), base: f[1].id(), quote: f[2].id(), bdec: f[3].i(), qdec: f[4].i(),
            tick: f[5].d(), lot: f[6].d(), min: f[7].d(), max: f[8].d(), refp: f[9].d(),
            band: f[10].i(), maker: f[11].i(), taker: f[12].i(),
        })),
        1 => K::Halted(f[0].id()),
        2 => K::Resumed(f[0].id()),
        3 => K::Opened(f[0].id()),
        4 => K::Deposited(f[0].id(), f[1].id(), f[2].i()),
        5 => K::Withdrawn(f[0].id(), f[1].id(), f[2].i()),
        6 => K::WithdrawRej { acc: f[0].id(), asset: f[1].id(), requested: f[2].d(), reason: f[3].e() },
        7 => K::Accepted {
            oid: f[0].id(), acc: f[1].id(), sym: f[2].id(), coid: f[3].id(), side: f[4].e(),
            otype: f[5].e(), tif: f[6].e(), post_only: f[7].b(), stp: f[8].e(), price: f[9].i(),
            qty: f[10].i(), budget: f[11].i(), asset: f[12].id(), reserved: f[13].i(),
        },
        8 => K::Rejected { oid: f[0].id(), acc: f[1].id(), sym: f[2].id(), coid: f[3].id(), reason: f[4].e() },
        9 => K::Rested {
            oid: f[0].id(), acc: f[1].id(), sym: f[2].id(), side: f[3].e(), price: f[4].i(), qty: f[5].i(),
        },
        10 => K::Trade {
            sym: f[0].id(), trade_id: f[1].i(), price: f[2].i(), qty: f[3].i(), notional: f[4].i(),
            maker_oid: f[5].id(), taker_oid: f[6].id(), maker_acc: f[7].id(), taker_acc: f[8].id(),
            taker_side: f[9].e(), maker_fee: f[10].i(), taker_fee: f[11].i(),
        },
        11 => K::Canceled {
            oid: f[0].id(), acc: f[1].id(), sym: f[2].id(), reason: f[3].e(), remaining: f[4].i(),
            asset: f[5].id(), released: f[6].i(),
        },
        12 => K::Amended {
            oid: f[0].id(), acc: f[1].id(), sym: f[2].id(), old_price: f[3].i(), new_price: f[4].i(),
            old_qty: f[5].i(), new_qty: f[6].i(), kept: f[7].b(), reserved: f[8].i(),
        },
        _ => K::CmdRejected { ctype: f[0].r(), subject: f[1].id(), reason: f[2].e(), detail: f[3].r() },
    }
}

// ------------------------------------------------------------------ state
pub struct Inst {
    pub sym: u32,
    pub base: u32,
    pub quote: u32,
    pub bdec: i128,
    pub qdec: i128,
    pub tick: Dec,
    pub tick_text: Arc<DecV>,
    pub lot: Dec,
    pub lot_text: Arc<DecV>,
    pub min_lots: i128,
    pub max_lots: i128,
    pub ref_ticks: i128,
    pub band: i128,
    pub maker: i128,
    pub taker: i128,
    pub halted: bool,
    pub qatpl: i128,
    pub bapl: i128,
    /// the last `band` computed: (reference, low, high); the reference rarely changes
    pub band_memo: std::cell::Cell<(i128, i128, i128)>,
}

/// An empty `Inst::band_memo` (no reference is `i128::MIN`).
pub const NO_BAND: (i128, i128, i128) = (i128::MIN, 0, 0);

pub const BPS: i128 = 10_000;

#[inline]
pub fn floor_div(a: i128, b: i128) -> i128 {
    // every divisor here is positive, where Euclidean division is floor division; 128-bit
    // division is a slow library call, so 64-bit operands take the 64-bit instruction
    if let (Ok(x), Ok(y)) = (i64::try_from(a), i64::try_from(b)) {
        if y > 0 {
            return x.div_euclid(y) as i128;
        }
    }
    a.div_euclid(b)
}
/// `a * b`: two 64-bit operands take one 64x64->128-bit multiply (their product cannot
/// overflow 128 bits); others the checked 128-bit product (overflow panics, as everywhere).
#[inline(always)]
pub fn mul(a: i128, b: i128) -> i128 {
    match (i64::try_from(a), i64::try_from(b)) {
        (Ok(x), Ok(y)) => (x as i128).wrapping_mul(y as i128),
        _ => a * b,
    }
}
#[inline]
pub fn fee(notional: i128, bps: i128) -> i128 {
    -floor_div(mul(-notional, bps), BPS)
}

impl Inst {
    pub fn max_fee(&self) -> i128 {
        if self.maker > self.taker { self.maker } else { self.taker }
    }
    pub fn buy_unit_cost(&self, price: i128) -> i128 {
        let one = mul(price, self.qatpl);
        one + fee(one, self.max_fee())
    }
    pub fn taker_unit_cost(&self, price: i128) -> i128 {
        let one = mul(price, self.qatpl);
        one + fee(one, self.taker)
    }
    pub fn band(&self, reference: i128) -> (i128, i128) {
        let (r, low, high) = self.band_memo.get();
        if r == reference {
            return (low, high);
        }
        let (low, high) = self.band_of(reference);
        self.band_memo.set((reference, low, high));
        (low, high)
    }
    fn band_of(&self, reference: i128) -> (i128, i128) {
        let low = -floor_div(mul(-reference, BPS - self.band), BPS);
        let high = floor_div(mul(reference, BPS + self.band), BPS);
        (if low > 1 { low } else { 1 }, high)
    }
}

#[derive(Clone, Copy)]
pub struct Order {
    pub oid: u32,
    pub acc: u32,
    pub sym: u32,
    pub coid: u32,
    pub side: u8,
    pub otype: u8,
    pub tif: u8,
    pub post_only: bool,
    pub stp: u8,
    pub price: i128,
    pub remaining: i128,
    pub budget: bool,
    pub asset: u32,
    pub reserved: i128,
    pub seq: i128,
    pub resting: bool,
}

#[derive(Default)]
pub struct BookSide {
    pub levels: BTreeMap<i128, VecDeque<u32>>,
}

impl BookSide {
    pub fn append(&mut self, price: i128, oid: u32) {
        self.levels.entry(price).or_default().push_back(oid);
    }
    pub fn remove(&mut self, price: i128, oid: u32) {
        if let Some(q) = self.levels.get_mut(&price) {
            if q.front() == Some(&oid) {
                q.pop_front();
            } else if let Some(pos) = q.iter().position(|&o| o == oid) {
                q.remove(pos);
            }
            if q.is_empty() {
                self.levels.remove(&price);
            }
        }
    }
}

#[derive(Default)]
pub struct Book {
    pub bids: BookSide,
    pub asks: BookSide,
}

impl Book {
    pub fn side(&mut self, side: u8) -> &mut BookSide {
        if side == BUY { &mut self.bids } else { &mut self.asks }
    }
    pub fn crosses(&self, side: u8, price: i128) -> bool {
        if side == BUY {
            self.asks.levels.keys().next().is_some_and(|&best| best <= price)
        } else {
            self.bids.levels.keys().next_back().is_some_and(|&best| best >= price)
        }
    }
    pub fn ids_by_priority(&self, bids: bool) -> Vec<u32> {
        let mut out = Vec::new();
        if bids {
            for q in self.bids.levels.values().rev() {
                out.extend(q.iter().copied());
            }
        } else {
            for q in self.asks.levels.values() {
                out.extend(q.iter().copied());
            }
        }
        out
    }
}

#[derive(Default, Clone, Copy)]
pub struct Bal {
    pub available: i128,
    pub reserved: i128,
}

#[derive(Default)]
pub struct Account {
    pub bals: Vec<(u32, Bal)>,
}

impl Account {
    pub fn bal(&mut self, asset: u32) -> &mut Bal {
        let pos = match self.bals.iter().position(|(a, _)| *a == asset) {
            Some(p) => p,
            None => {
                self.bals.push((asset, Bal::default()));
                self.bals.len() - 1
            }
        };
        &mut self.bals[pos].1
    }
    pub fn available(&self, asset: u32) -> i128 {
        self.bals.iter().find(|(a, _)| *a == asset).map_or(0, |(_, b)| b.available)
    }
    pub fn get(&self, asset: u32) -> Option<Bal> {
        self.bals.iter().find(|(a, _)| *a == asset).map(|(_, b)| *b)
    }
}

/// A set of interned ids (dense: ids are small consecutive integers).
#[derive(Default)]
pub struct IdSet {
    bits: Vec<u64>,
    n: usize,
}

impl IdSet {
    #[inline]
    pub fn insert(&mut self, id: u32) -> bool {
        let (w, b) = (id as usize / 64, 1u64 << (id % 64));
        if w >= self.bits.len() {
            self.bits.resize((w + 1).next_power_of_two(), 0);
        }
        let fresh = self.bits[w] & b == 0;
        self.bits[w] |= b;
        self.n += fresh as usize;
        fresh
    }
    #[inline]
    pub fn contains(&self, id: &u32) -> bool {
        self.bits.get(*id as usize / 64).is_some_and(|w| w & (1u64 << (*id % 64)) != 0)
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Every id in the set, in increasing order.
    pub fn ids(&self) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.n);
        for (w, word) in self.bits.iter().enumerate() {
            let mut x = *word;
            while x != 0 {
                let b = x.trailing_zeros();
                out.push((w * 64) as u32 + b);
                x &= x - 1;
            }
        }
        out
    }
}

/// The open orders by interned order id: a slab of orders (freed slots reused) and, per id,
/// its slot. Ids are small consecutive integers, so lookups are two array reads, and growing
/// never rehashes (a hash map's rehash and the fresh pages it touches showed in profiles).
#[derive(Default)]
pub struct Orders {
    slot_of: Vec<u32>, // id -> 1 + slot; 0: no open order
    slab: Vec<Order>,
    free: Vec<u32>,
    len: usize,
}

impl Orders {
    #[inline]
    fn slot(&self, oid: u32) -> Option<usize> {
        match self.slot_of.get(oid as usize) {
            Some(&s) if s != 0 => Some(s as usize - 1),
            _ => None,
        }
    }
    #[inline]
    pub fn get(&self, oid: &u32) -> Option<&Order> {
        self.slot(*oid).map(|s| &self.slab[s])
    }
    #[inline]
    pub fn get_mut(&mut self, oid: &u32) -> Option<&mut Order> {
        self.slot(*oid).map(|s| &mut self.slab[s])
    }
    #[inline]
    pub fn contains_key(&self, oid: &u32) -> bool {
        self.slot(*oid).is_some()
    }
    /// Insert or replace the order of `oid` (`order.oid` must be `oid`).
    pub fn insert(&mut self, oid: u32, order: Order) {
        debug_assert_eq!(order.oid, oid);
        if let Some(s) = self.slot(oid) {
            self.slab[s] = order;
            return;
        }
        let s = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = order;
                s as usize
            }
            None => {
                self.slab.push(order);
                self.slab.len() - 1
            }
        };
        let i = oid as usize;
        if i >= self.slot_of.len() {
            self.slot_of.resize((i + 1).next_power_of_two().max(1024), 0);
        }
        self.slot_of[i] = s as u32 + 1;
        self.len += 1;
    }
    pub fn remove(&mut self, oid: &u32) -> Option<Order> {
        let s = self.slot(*oid)?;
        self.slot_of[*oid as usize] = 0;
        self.free.push(s as u32);
        self.len -= 1;
        Some(self.slab[s])
    }
    pub fn len(&self) -> usize {
        self.len
    }
    /// The open orders, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &Order> + '_ {
        self.slab
            .iter()
            .enumerate()
            .filter(move |(s, o)| self.slot_of.get(o.oid as usize) == Some(&(*s as u32 + 1)))
            .map(|(_, o)| o)
    }
}

impl std::ops::Index<&u32> for Orders {
    type Output = Order;
    #[inline]
    fn index(&self, oid: &u32) -> &Order {
        self.get(oid).expect("no such order")
    }
}

/// One PlaceOrder's idempotency record: its key, its order id and where its events are in
/// `Records::bytes` (`n` events from `at`: a record's events are consecutive, since
/// recording stops at the first event of another command).
pub struct Record {
    pub acc: u32,
    pub coid: u32,
    pub oid: u32,
    next: u32, // 1 + the next record with the same client order id (other account); 0: none
    at: usize,
    n: u32,
}

/// The idempotency records, keyed by (account, client order id), with their events in a
/// compact byte encoding (variable-length numbers; about 30 bytes an event instead of a 160-byte `Ev` and a
/// retained `Meta`): records are written for every order and read back only for a repeated
/// command or a snapshot, so they are kept small rather than ready to use.
#[derive(Default)]
pub struct Records {
    bytes: Vec<u8>,
    recs: Vec<Record>,
    by_coid: Vec<u32>, // client order id -> 1 + its first record; 0: none
}

// Unchecked writers into reserved space (`Records::push`).
#[inline(always)]
unsafe fn w_byte(p: &mut *mut u8, b: u8) {
    **p = b;
    *p = p.add(1);
}

// Numbers are written as one byte when below 0x80, else as a byte 0x80 | n followed by their
// n low bytes, little-endian (n <= 16): one unaligned store instead of a loop per 7 bits.
#[inline(always)]
unsafe fn w_u64(p: &mut *mut u8, v: u64) {
    if v < 0x80 {
        return w_byte(p, v as u8);
    }
    let n = 8 - (v.leading_zeros() / 8) as usize;
    **p = 0x80 | n as u8;
    std::ptr::write_unaligned(p.add(1) as *mut u64, v.to_le());
    *p = p.add(1 + n);
}

#[inline(always)]
unsafe fn w_u128(p: &mut *mut u8, v: u128) {
    if v >> 64 == 0 {
        return w_u64(p, v as u64);
    }
    let n = 16 - (v.leading_zeros() / 8) as usize;
    **p = 0x80 | n as u8;
    std::ptr::write_unaligned(p.add(1) as *mut u128, v.to_le());
    *p = p.add(1 + n);
}

#[inline(always)]
unsafe fn w_i(p: &mut *mut u8, n: i128) {
    w_u128(p, ((n << 1) ^ (n >> 127)) as u128)
}

#[inline(always)]
unsafe fn w_id(p: &mut *mut u8, id: u32) {
    w_u64(p, id as u64)
}

/// The most bytes a number's writer stores (its tag and up to 16 bytes).
const NUM_MAX: usize = 17;
/// The most bytes `enc_fast` writes (14 fields).
const FAST_MAX: usize = 14 * NUM_MAX;

/// The fields of the frequent events after their metadata, written as the generic path
/// (`V` by `V`, in dataclass order) would write them, without building the values.
#[inline(always)]
unsafe fn enc_fast(p: &mut *mut u8, k: &K) {
    match k {
        K::Accepted {
            oid, acc, sym, coid, side, otype, tif, post_only, stp, price, qty, budget, asset,
            reserved,
        } => {
            w_id(p, *oid);
            w_id(p, *acc);
            w_id(p, *sym);
            w_id(p, *coid);
            w_byte(p, *side);
            w_byte(p, *otype);
            w_byte(p, *tif);
            w_byte(p, *post_only as u8);
            w_byte(p, *stp);
            w_i(p, *price);
            w_i(p, *qty);
            w_i(p, *budget);
            w_id(p, *asset);
            w_i(p, *reserved);
        }
        K::Rejected { oid, acc, sym, coid, reason } => {
            w_id(p, *oid);
            w_id(p, *acc);
            w_id(p, *sym);
            w_id(p, *coid);
            w_byte(p, *reason);
        }
        K::Rested { oid, acc, sym, side, price, qty } => {
            w_id(p, *oid);
            w_id(p, *acc);
            w_id(p, *sym);
            w_byte(p, *side);
            w_i(p, *price);
            w_i(p, *qty);
        }
        K::Trade {
            sym, trade_id, price, qty, notional, maker_oid, taker_oid, maker_acc, taker_acc,
            taker_side, maker_fee, taker_fee,
        } => {
            w_id(p, *sym);
            w_i(p, *trade_id);
            w_i(p, *price);
            w_i(p, *qty);
            w_i(p, *notional);
            w_id(p, *maker_oid);
            w_id(p, *taker_oid);
            w_id(p, *maker_acc);
            w_id(p, *taker_acc);
            w_byte(p, *taker_side);
            w_i(p, *maker_fee);
            w_i(p, *taker_fee);
        }
        K::Canceled { oid, acc, sym, reason, remaining, asset, released } => {
            w_id(p, *oid);
            w_id(p, *acc);
            w_id(p, *sym);
            w_byte(p, *reason);
            w_i(p, *remaining);
            w_id(p, *asset);
            w_i(p, *released);
        }
        _ => unreachable!("enc_fast: not a frequent event"),
    }
}

#[inline(always)]
unsafe fn w_s(p: &mut *mut u8, s: &str) {
    w_u64(p, s.len() as u64);
    std::ptr::copy_nonoverlapping(s.as_ptr(), *p, s.len());
    *p = p.add(s.len());
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u(&mut self) -> u128 {
        let tag = self.byte();
        if tag < 0x80 {
            return tag as u128;
        }
        let n = (tag & 0x7f) as usize;
        let mut v = 0u128;
        for (i, b) in self.b[self.at..self.at + n].iter().enumerate() {
            v |= (*b as u128) << (8 * i);
        }
        self.at += n;
        v
    }
    fn i(&mut self) -> i128 {
        let u = self.u();
        ((u >> 1) as i128) ^ -((u & 1) as i128)
    }
    fn byte(&mut self) -> u8 {
        self.at += 1;
        self.b[self.at - 1]
    }
    fn s(&mut self) -> &str {
        let n = self.u() as usize;
        self.at += n;
        std::str::from_utf8(&self.b[self.at - n..self.at]).expect("recorded text is UTF-8")
    }
}

const OWN_META: u8 = 0x80;

/// Append a command's metadata (ids and timestamp) to `out`.
fn put_meta(out: &mut Vec<u8>, m: &Meta) {
    let (cid, corr) = (m.cid.s(), m.corr.s());
    out.reserve(3 * NUM_MAX + cid.len() + corr.len());
    // SAFETY: at most the bytes reserved just before are written
    unsafe {
        let base = out.as_mut_ptr();
        let mut p = base.add(out.len());
        w_s(&mut p, cid);
        w_s(&mut p, corr);
        w_i(&mut p, m.ts);
        out.set_len(p.offset_from(base) as usize);
    }
}

fn read_meta(r: &mut Reader<'_>) -> Arc<Meta> {
    let cid = RStr::own(r.s());
    let corr = RStr::own(r.s());
    Arc::new(Meta::new(cid, corr, r.i()))
}

impl Records {
    #[inline]
    fn find(&self, acc: u32, coid: u32) -> Option<usize> {
        let mut i = *self.by_coid.get(coid as usize)?;
        while i != 0 {
            let rec = &self.recs[i as usize - 1];
            if rec.acc == acc {
                return Some(i as usize - 1);
            }
            i = rec.next;
        }
        None
    }

    #[inline]
    pub fn get(&self, acc: u32, coid: u32) -> Option<&Record> {
        self.find(acc, coid).map(|i| &self.recs[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Record> + '_ {
        self.recs.iter()
    }

    /// Start the record of (acc, coid) (replacing any earlier one, as a dict assignment
    /// would) with the events of one command to follow; `m` is that command's metadata.
    pub fn start(&mut self, acc: u32, coid: u32, oid: u32, m: &Meta) -> usize {
        let at = self.bytes.len();
        put_meta(&mut self.bytes, m);
        match self.find(acc, coid) {
            Some(i) => {
                self.recs[i].oid = oid;
                self.recs[i].at = at;
                self.recs[i].n = 0;
                i
            }
            None => {
                let c = coid as usize;
                if c >= self.by_coid.len() {
                    self.by_coid.resize((c + 1).next_power_of_two().max(1024), 0);
                }
                let next = self.by_coid[c];
                self.recs.push(Record { acc, coid, oid, next, at, n: 0 });
                self.by_coid[c] = self.recs.len() as u32;
                self.recs.len() - 1
            }
        }
    }

    /// Append `e` to record `i`, the record started last (`head`: its command's metadata).
    pub fn push(&mut self, i: usize, e: &Ev, head: &Meta) {
        let same = std::ptr::eq(&*e.m, head)
            || (e.m.cid.s() == head.cid.s() && e.m.corr.s() == head.corr.s() && e.m.ts == head.ts);
        let out = &mut self.bytes;
        out.push(e.cls() as u8 | if same { 0 } else { OWN_META });
        if !same {
            put_meta(out, &e.m);
        }
        // SAFETY (both paths): at most the bytes reserved just before are written
        if matches!(e.k, K::Accepted { .. } | K::Rested { .. } | K::Trade { .. } | K::Canceled { .. } | K::Rejected { .. }) {
            out.reserve(FAST_MAX);
            unsafe {
                let base = out.as_mut_ptr();
                let mut p = base.add(out.len());
                enc_fast(&mut p, &e.k);
                out.set_len(p.offset_from(base) as usize);
            }
        } else {
            let vals = e.values();
            let fields = &vals.as_slice()[3..];
            let mut need = 0;
            for v in fields {
                need += match v {
                    V::R(r) => NUM_MAX + r.s().len(),
                    V::D(d) => NUM_MAX + d.text.len(),
                    _ => NUM_MAX,
                };
            }
            out.reserve(need);
            unsafe {
                let base = out.as_mut_ptr();
                let mut p = base.add(out.len());
                for v in fields {
                    match *v {
                        V::Id(id) => w_u64(&mut p, id as u64),
                        V::R(r) => w_s(&mut p, r.s()),
                        V::I(n) => w_i(&mut p, *n),
                        V::B(b) => w_byte(&mut p, b as u8),
                        V::E(_, idx) => w_byte(&mut p, idx),
                        V::D(d) => w_s(&mut p, &d.text),
                    }
                }
                out.set_len(p.offset_from(base) as usize);
            }
        }
        self.recs[i].n += 1;
    }

    /// The events of `rec`, decoded.
    pub fn events(&self, rec: &Record) -> Vec<Ev> {
        let mut r = Reader { b: &self.bytes, at: rec.at };
        let head = read_meta(&mut r);
        let mut out = Vec::with_capacity(rec.n as usize);
        let mut vals: Vec<DV> = Vec::with_capacity(MAX_FIELDS);
        for _ in 0..rec.n {
            let tag = r.byte();
            let cls = (tag & !OWN_META) as usize;
            let m = if tag & OWN_META != 0 { read_meta(&mut r) } else { head.clone() };
            vals.clear();
            for (_, kind) in &event_fields(cls)[3..] {
                vals.push(match kind {
                    FK::S => DV::Id(r.u() as u32),
                    FK::R => DV::R(Arc::new(RStr::own(r.s()))),
                    FK::I => DV::I(r.i()),
                    FK::B => DV::B(r.byte() != 0),
                    FK::E(_) => DV::E(r.byte()),
                    FK::D => DV::D(DecV::new(r.s())),
                });
            }
            out.push(Ev { m, k: assemble_k(cls, &vals) });
        }
        out
    }
}
