//! Tradecore's matching kernel: `domain.exchange.Exchange` in Rust, decision for decision.
//!
//! `domain/exchange.py` stays the reference; this crate must give the same events (same
//! classes, same values, same order), the same snapshot and therefore the same
//! `state_hash()`. `tests/unit/domain/test_kernel_parity.py` checks it on random streams.
//! Python wiring: `domain/kernel.py` (`FastExchange`).

#![allow(clippy::too_many_arguments)]
// pyo3 0.22's #[pymethods] expansion converts PyErr into itself
#![allow(clippy::useless_conversion)]

mod alloc;
mod dec;
mod json;
mod model;

#[global_allocator]
static ALLOC: alloc::KernelAlloc = alloc::KernelAlloc;

use std::sync::Arc;

use pyo3::exceptions::{PyKeyError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple, PyType};
use sha2::{Digest, Sha256};

use dec::{ConvErr, Dec};
use json::{write_str, Parser, J};
use model::*;

const SNAPSHOT_FORMAT: i128 = 1;

/// Ask the CPU to load the cache line at `p` (a hint: never faults, no effect on results).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch(p as *const i8, _MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Positional constructor of a frozen, slotted dataclass: its type and slot offsets.
struct Builder {
    tp: Py<PyType>,
    offsets: Vec<isize>,
    /// instances hold nothing but the slots (set by `build`), and the type allocates as
    /// `object` does: build them without zeroing and without GC tracking (see `build_raw`)
    plain: bool,
}

impl Builder {
    fn new(cls: &Bound<'_, PyAny>, expected: &[&str]) -> PyResult<Builder> {
        let py = cls.py();
        let tp = cls.downcast::<PyType>()?.clone();
        let fields = py.import_bound("dataclasses")?.getattr("fields")?.call1((cls,))?;
        let names: Vec<String> = fields
            .iter()?
            .map(|f| f?.getattr("name")?.extract::<String>())
            .collect::<PyResult<_>>()?;
        if names != expected {
            return Err(PyTypeError::new_err(format!(
                "{}: fields {:?} differ from the kernel's {:?}; rebuild the kernel",
                tp.name()?,
                names,
                expected
            )));
        }
        let member_type = py.import_bound("types")?.getattr("MemberDescriptorType")?;
        let mut offsets = Vec::new();
        for name in &names {
            let d = cls.getattr(name.as_str())?;
            if !d.get_type().is(&member_type) {
                return Err(PyTypeError::new_err(format!("{name} is not a slot")));
            }
            // SAFETY: a member_descriptor is a PyMemberDescrObject whose d_member is a
            // PyMemberDef (pyo3-ffi types the pointer as PyGetSetDef).
            let offset = unsafe {
                let md = d.as_ptr() as *mut ffi::PyMemberDescrObject;
                let member = (*md).d_member as *mut ffi::PyMemberDef;
                if (*member).type_code != ffi::Py_T_OBJECT_EX {
                    return Err(PyTypeError::new_err(format!("{name}: unexpected slot type")));
                }
                (*member).offset
            };
            offsets.push(offset);
        }
        // SAFETY: reading fields of a live type object
        let plain = unsafe {
            let t = tp.as_ptr() as *mut ffi::PyTypeObject;
            let size = std::mem::size_of::<ffi::PyObject>() + offsets.len() * std::mem::size_of::<usize>();
            let mut sorted = offsets.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let base = std::mem::size_of::<ffi::PyObject>() as isize;
            let packed = sorted.len() == offsets.len()
                && sorted.iter().enumerate().all(|(i, o)| *o == base + (i * std::mem::size_of::<usize>()) as isize);
            (*t).tp_basicsize as usize == size
                && (*t).tp_itemsize == 0
                && (*t).tp_dictoffset == 0
                && (*t).tp_weaklistoffset == 0
                && packed
                && (*t).tp_flags & ffi::Py_TPFLAGS_HAVE_GC != 0
                && (*t).tp_alloc.map(|f| f as usize) == Some(ffi::PyType_GenericAlloc as *const () as usize)
        };
        Ok(Builder { tp: tp.unbind(), offsets, plain })
    }

    /// Build an instance from new references (consumed, also on error).
    unsafe fn build(&self, py: Python<'_>, vals: &[*mut ffi::PyObject]) -> PyResult<PyObject> {
        self.build_raw(py, vals).map(|obj| PyObject::from_owned_ptr(py, obj))
    }

    /// `build`, returning the new reference itself.
    unsafe fn build_raw(&self, py: Python<'_>, vals: &[*mut ffi::PyObject]) -> PyResult<*mut ffi::PyObject> {
        let tp = self.tp.as_ptr() as *mut ffi::PyTypeObject;
        // Every slot is set below, so a plain instance needs no zeroing; and it holds only
        // immutable values (events: strings, ints, enum members, Decimals; `Outcome`: a
        // tuple of events and a bool), so it can never be part of a reference cycle and
        // the collector need not track it (CPython does the same for such tuples and dicts).
        // The allocation is the one `PyType_GenericAlloc` makes; deallocation is unchanged.
        let obj = if self.plain && vals.len() == self.offsets.len() {
            ffi::_PyObject_GC_New(tp)
        } else {
            (*tp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc)(tp, 0)
        };
        if obj.is_null() {
            for v in vals {
                ffi::Py_DECREF(*v);
            }
            return Err(PyErr::fetch(py));
        }
        for (off, v) in self.offsets.iter().zip(vals) {
            *((obj as *mut u8).offset(*off) as *mut *mut ffi::PyObject) = *v;
        }
        Ok(obj)
    }

    /// Start loading the objects in `obj`'s slots (a hint: no effect on results), if `obj`'s
    /// type is exactly this class: their cache misses then overlap instead of following one
    /// another as each field is read.
    #[inline]
    fn prefetch_fields(&self, obj: &Bound<'_, PyAny>) {
        unsafe {
            if ffi::Py_TYPE(obj.as_ptr()) != self.tp.as_ptr() as *mut ffi::PyTypeObject {
                return;
            }
            for off in &self.offsets {
                let p = *((obj.as_ptr() as *const u8).offset(*off) as *const *const u8);
                if !p.is_null() {
                    prefetch(p);
                    prefetch(p.wrapping_add(64)); // str text, Decimal digits
                }
            }
        }
    }

    /// Slot `f` of `obj` (borrowed; NULL when unset) if `obj`'s type is exactly this class.
    #[inline]
    fn slot(&self, obj: &Bound<'_, PyAny>, f: usize) -> Option<*mut ffi::PyObject> {
        unsafe {
            if ffi::Py_TYPE(obj.as_ptr()) != self.tp.as_ptr() as *mut ffi::PyTypeObject {
                return None;
            }
            let p = *((obj.as_ptr() as *const u8).offset(self.offsets[f]) as *const *mut ffi::PyObject);
            if p.is_null() {
                None
            } else {
                Some(p)
            }
        }
    }
}

// Command classes' dataclass fields, in order (checked against Python at start-up); the hot
// paths read a field by its position, straight from the slot of an exact command class.
const META_FIELDS: [&str; 3] = ["command_id", "correlation_id", "timestamp_ns"];
const CMD_FIELDS: [&[&str]; 10] = [
    &[
        "account_id", "symbol", "side", "order_type", "order_id", "client_order_id", "price",
        "quantity", "quote_budget", "time_in_force", "post_only", "stp",
    ],
    &["account_id", "order_id"],
    &["account_id", "order_id", "new_price", "new_quantity"],
    &["account_id", "symbol"],
    &["account_id", "asset", "amount"],
    &["account_id", "asset", "amount"],
    &["account_id"],
    &[
        "symbol", "base", "quote", "base_decimals", "quote_decimals", "tick_size", "lot_size",
        "min_qty", "max_qty", "reference_price", "price_band_bps", "maker_fee_bps",
        "taker_fee_bps",
    ],
    &["symbol"],
    &["symbol"],
];
const F_CID: usize = 0;
const F_CORR: usize = 1;
const F_TS: usize = 2;
// PlaceOrder
const P_ACC: usize = 3;
const P_SYM: usize = 4;
const P_SIDE: usize = 5;
const P_OTYPE: usize = 6;
const P_OID: usize = 7;
const P_COID: usize = 8;
const P_PRICE: usize = 9;
const P_QTY: usize = 10;
const P_BUDGET: usize = 11;
const P_TIF: usize = 12;
const P_POST: usize = 13;
const P_STP: usize = 14;
// CancelOrder, AmendOrder
const C_ACC: usize = 3;
const C_OID: usize = 4;
const A_PRICE: usize = 5;
const A_QTY: usize = 6;

fn cmd_field_name(kind: usize, f: usize) -> &'static str {
    if f < META_FIELDS.len() {
        META_FIELDS[f]
    } else {
        CMD_FIELDS[kind][f - META_FIELDS.len()]
    }
}

/// `decimal.Decimal`'s C layout (CPython's `_decimal`: `PyDecObject` holding an `mpd_t`),
/// read directly once start-up probes showed it agrees with `str()` on this interpreter.
#[repr(C)]
struct MpdT {
    flags: u8,
    exp: isize,
    digits: isize,
    len: isize,
    alloc: isize,
    data: *const u64,
}

#[repr(C)]
struct PyDecObject {
    ob_base: ffi::PyObject,
    hash: ffi::Py_hash_t,
    dec: MpdT,
}

const MPD_NEG: u8 = 1;
const MPD_INF: u8 = 2;
const MPD_SPECIAL: u8 = 2 | 4 | 8; // inf, nan, snan
const MPD_RADIX: u128 = 10_000_000_000_000_000_000; // 10^19 per 64-bit word

/// The value of a `Decimal` from its `mpd_t`; None when the coefficient exceeds 128 bits.
unsafe fn read_mpd(obj: *mut ffi::PyObject) -> Option<Dec> {
    let d = &(*(obj as *const PyDecObject)).dec;
    let neg = d.flags & MPD_NEG != 0;
    if d.flags & MPD_SPECIAL != 0 {
        return Some(Dec::NonFinite { neg, nan: d.flags & MPD_INF == 0 });
    }
    if d.len < 1 || d.len > 3 || d.data.is_null() {
        return None;
    }
    let mut coef: u128 = 0;
    for i in (0..d.len).rev() {
        coef = coef.checked_mul(MPD_RADIX)?.checked_add(*d.data.offset(i) as u128)?;
    }
    Some(Dec::Finite { neg, coef, exp: d.exp as i64 })
}

/// Python objects the kernel needs, handed over by `domain/kernel.py`.
struct Ctx {
    events: Vec<Builder>,
    event_types: Vec<Py<PyType>>,
    outcome: Builder,
    enums: Vec<Vec<PyObject>>,
    commands: Vec<Py<PyType>>,
    cmd_layouts: Vec<Builder>,
    decimal: PyObject,
    /// `read_mpd` agrees with `str()` here (CPython's `_decimal`, 64-bit words)
    decimal_raw: bool,
    decode_error: PyObject,
    sorted: Vec<Vec<usize>>, // per event class: JSON key order (indices; usize::MAX-1/-2 consts)
    fields: Vec<Vec<(&'static str, FK)>>,
}

const ET: usize = usize::MAX; // "event_type"
const SV: usize = usize::MAX - 1; // "schema_version"

// command classes, in the order `Exchange.handle` tests them
const CMD_PLACE: usize = 0;
const CMD_CANCEL: usize = 1;
const CMD_AMEND: usize = 2;
const CMD_CANCEL_ALL: usize = 3;
const CMD_DEPOSIT: usize = 4;
const CMD_WITHDRAW: usize = 5;
const CMD_OPEN: usize = 6;
const CMD_LIST: usize = 7;
const CMD_HALT: usize = 8;

// how a matching pass ended
const FILLED: u8 = 0;
const NO_LIQUIDITY: u8 = 1;
const BUDGET_EXHAUSTED: u8 = 2;
const TAKER_CANCELED: u8 = 3;

enum Rej {
    R(u8, String),
}

type Decided<T> = Result<T, Rej>;

fn rej<T>(reason: u8) -> Decided<T> {
    Err(Rej::R(reason, String::new()))
}

fn conv_detail(err: &ConvErr, value: &str, unit: &str) -> String {
    match err {
        ConvErr::Express => format!("cannot express {value} in units of {unit}"),
        ConvErr::NotMultiple => format!("{value} is not a multiple of {unit}"),
    }
}

#[pyclass(module = "domain._kernel")]
struct Kernel {
    ctx: Ctx,
    strs: Interner,
    insts: Vec<Inst>,
    inst_idx: FxMap<u32, usize>,
    books: Vec<Book>,
    last_price: FxMap<u32, i128>,
    asset_dec: FxMap<u32, i128>,
    accounts: FxMap<u32, Account>,
    account_order: Vec<u32>,
    fees: FxMap<u32, i128>,
    orders: Orders,
    trade_seq: i128,
    order_seq: i128,
    used: IdSet,
    /// the idempotency records (see `Records`)
    client: Records,
    ints: IntCache,
    /// the record being written (its index) and its command's metadata
    recording: Option<(usize, Arc<Meta>)>,
    pending: Vec<Ev>,
}

fn dec_of(text: &str) -> PyResult<Dec> {
    dec::parse(text).ok_or_else(|| {
        PyOverflowError::new_err(format!("decimal {text} has more than 38 digits (kernel limit)"))
    })
}

/// `domain.values.MAX_LISTING_NOTIONAL`
const MAX_LISTING_NOTIONAL: i128 = 1_000_000_000_000_000_000_000_000_000_000; // 1e30

fn int_obj(py: Python<'_>, v: i128) -> *mut ffi::PyObject {
    if let Ok(small) = i64::try_from(v) {
        unsafe { ffi::PyLong_FromLongLong(small) }
    } else {
        v.into_py(py).into_ptr()
    }
}

/// Recently built `int` objects by value (direct-mapped): the events of one command share
/// their timestamp, and prices, sizes and amounts repeat. Ints are immutable, so sharing one
/// object is invisible; CPython does the same for -5..=256 (left to it here).
struct IntCache {
    slots: std::cell::RefCell<Vec<(i64, usize)>>, // (value, owned PyObject pointer or 0)
}

const INT_CACHE_BITS: u32 = 12;

impl IntCache {
    fn new() -> IntCache {
        IntCache { slots: std::cell::RefCell::new(vec![(0, 0); 1 << INT_CACHE_BITS]) }
    }

    /// A new reference to an `int` equal to `v`.
    #[inline]
    fn get(&self, py: Python<'_>, v: i128) -> *mut ffi::PyObject {
        let Ok(small) = i64::try_from(v) else { return int_obj(py, v) };
        if (-5..=256).contains(&small) {
            return unsafe { ffi::PyLong_FromLongLong(small) };
        }
        let i = ((small as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - INT_CACHE_BITS)) as usize;
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[i];
        unsafe {
            if slot.1 != 0 && slot.0 == small {
                let p = slot.1 as *mut ffi::PyObject;
                ffi::Py_INCREF(p);
                return p;
            }
            let p = ffi::PyLong_FromLongLong(small);
            if p.is_null() {
                return p;
            }
            ffi::Py_INCREF(p);
            if slot.1 != 0 {
                ffi::Py_DECREF(slot.1 as *mut ffi::PyObject);
            }
            *slot = (small, p as usize);
            p
        }
    }
}

impl Drop for IntCache {
    fn drop(&mut self) {
        let slots = std::mem::take(self.slots.get_mut());
        Python::with_gil(|_| {
            for (_, p) in slots {
                if p != 0 {
                    unsafe { ffi::Py_DECREF(p as *mut ffi::PyObject) };
                }
            }
        });
    }
}

/// An `int` argument (a fast path for exact ints that fit in 64 bits).
fn int_of(obj: &Bound<'_, PyAny>) -> PyResult<i128> {
    unsafe {
        if ffi::PyLong_CheckExact(obj.as_ptr()) != 0 {
            let mut overflow = 0;
            let v = ffi::PyLong_AsLongLongAndOverflow(obj.as_ptr(), &mut overflow);
            if overflow == 0 && (v != -1 || ffi::PyErr_Occurred().is_null()) {
                return Ok(v as i128);
            }
            if !ffi::PyErr_Occurred().is_null() {
                ffi::PyErr_Clear();
            }
        }
    }
    obj.extract::<i128>()
}

/// Append the decimal text of `n` (as Python's `int.__repr__`).
fn write_int(out: &mut String, n: i128) {
    use std::fmt::Write;
    if let Ok(small) = i64::try_from(n) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        let mut u = small.unsigned_abs();
        loop {
            i -= 1;
            buf[i] = b'0' + (u % 10) as u8;
            u /= 10;
            if u == 0 {
                break;
            }
        }
        if small < 0 {
            out.push('-');
        }
        // SAFETY: ASCII digits only
        out.push_str(unsafe { std::str::from_utf8_unchecked(&buf[i..]) });
    } else {
        let _ = write!(out, "{n}");
    }
}

/// Parsed listing, as `domain.instruments.build_instrument` validates it.
fn build_instrument(
    strs: &Interner,
    l: &Listed,
) -> PyResult<Result<Inst, String>> {
    let e = |m: &str| Ok(Err(m.to_string()));
    if l.base == l.quote {
        return e("base and quote must differ");
    }
    for (name, d) in [("base_decimals", l.bdec), ("quote_decimals", l.qdec)] {
        if !(0..=18).contains(&d) {
            return e(&format!("{name} must be within 0..18"));
        }
    }
    let tick = dec_of(&l.tick.text)?;
    let lot = dec_of(&l.lot.text)?;
    let positive = |d: &Dec| dec::le_zero(d) == Some(false); // NaN is not positive
    if !positive(&tick) || !positive(&lot) {
        return e("tick_size and lot_size must be positive");
    }
    for (name, bps) in [("maker_fee_bps", l.maker), ("taker_fee_bps", l.taker)] {
        if !(0..=BPS).contains(&bps) {
            return e(&format!("{name} must be within 0..{BPS}"));
        }
    }
    if !(0 < l.band && l.band < BPS) {
        return e(&format!("price_band_bps must be within 1..{}", BPS - 1));
    }
    let Some(product) = dec::mul(&tick, &lot) else {
        return e("tick_size * lot_size has more than 28 significant digits");
    };
    let too_large = |name: &str| Ok(Err(format!("{name} reaches 10^36 units: too large")));
    let qatpl = match dec::to_units(&product, &dec::atom(l.qdec as i64)) {
        Ok(v) if v.abs() >= dec::HUGE => return too_large("tick_size * lot_size"),
        Ok(v) => v,
        Err(_) => return e("tick_size * lot_size is not a whole number of quote atoms"),
    };
    let bapl = match dec::to_units(&lot, &dec::atom(l.bdec as i64)) {
        Ok(v) if v.abs() >= dec::HUGE => return too_large("lot_size"),
        Ok(v) => v,
        Err(_) => return e("lot_size is not a whole number of base atoms"),
    };
    let min = dec_of(&l.min.text)?;
    let max = dec_of(&l.max.text)?;
    let (min_lots, max_lots) = match (dec::to_units(&min, &lot), dec::to_units(&max, &lot)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return e("min_qty and max_qty must be multiples of lot_size"),
    };
    if min_lots.abs() >= dec::HUGE {
        return too_large("min_qty");
    }
    if max_lots.abs() >= dec::HUGE {
        return too_large("max_qty");
    }
    if !(0 < min_lots && min_lots <= max_lots) {
        return e("need 0 < min_qty <= max_qty");
    }
    let refp = dec_of(&l.refp.text)?;
    let ref_ticks = match dec::to_units(&refp, &tick) {
        Ok(v) if v.abs() >= dec::HUGE => return too_large("reference_price"),
        Ok(v) => v,
        Err(_) => return e("reference_price must be a multiple of tick_size"),
    };
    if ref_ticks <= 0 {
        return e("reference_price must be positive");
    }
    // all positive and below 1e36 here; checked products stay exact or report overflow
    let notional = |a: i128, b: i128, c: i128| {
        a.checked_mul(b).and_then(|x| x.checked_mul(c)).map_or(true, |x| x >= MAX_LISTING_NOTIONAL)
    };
    if notional(max_lots, qatpl, ref_ticks) || notional(max_lots, bapl, 1) {
        return e("max_qty at reference_price reaches 10^30 atoms: too large");
    }
    let _ = strs;
    Ok(Ok(Inst {
        sym: l.sym,
        base: l.base,
        quote: l.quote,
        bdec: l.bdec,
        qdec: l.qdec,
        tick,
        tick_text: l.tick.clone(),
        lot,
        lot_text: l.lot.clone(),
        min_lots,
        max_lots,
        ref_ticks,
        band: l.band,
        maker: l.maker,
        taker: l.taker,
        halted: false,
        qatpl,
        bapl,
        band_memo: std::cell::Cell::new(NO_BAND),
    }))
}

impl Kernel {
    // ------------------------------------------------------------------ Python objects
    /// One event as a new reference to its `domain.events` object.
    fn ev_to_py(&self, py: Python<'_>, e: &Ev) -> PyResult<*mut ffi::PyObject> {
        // the frequent classes field by field; the others through their values
        if !matches!(e.k, K::Accepted { .. } | K::Rested { .. } | K::Trade { .. } | K::Canceled { .. }) {
            return self.ev_to_py_generic(py, e);
        }
        let id = |id: u32| self.strs.py(py, id);
        let int = |n: i128| self.ints.get(py, n);
        let en = |kind: u8, idx: u8| unsafe {
            let p = self.ctx.enums[kind as usize][idx as usize].as_ptr();
            ffi::Py_INCREF(p);
            p
        };
        let m = &*e.m;
        let mut buf = [std::ptr::null_mut(); MAX_FIELDS];
        buf[0] = m.cid.py(py);
        buf[1] = m.corr.py(py);
        buf[2] = match &m.ts_py {
            Some(o) => o.clone_ref(py).into_ptr(),
            None => int(m.ts),
        };
        let n = match &e.k {
            K::Accepted {
                oid, acc, sym, coid, side, otype, tif, post_only, stp, price, qty, budget,
                asset, reserved,
            } => {
                buf[3] = id(*oid);
                buf[4] = id(*acc);
                buf[5] = id(*sym);
                buf[6] = id(*coid);
                buf[7] = en(SIDE, *side);
                buf[8] = en(OTYPE, *otype);
                buf[9] = en(TIF, *tif);
                buf[10] = unsafe {
                    let b = if *post_only { ffi::Py_True() } else { ffi::Py_False() };
                    ffi::Py_INCREF(b);
                    b
                };
                buf[11] = en(STP, *stp);
                buf[12] = int(*price);
                buf[13] = int(*qty);
                buf[14] = int(*budget);
                buf[15] = id(*asset);
                buf[16] = int(*reserved);
                17
            }
            K::Rested { oid, acc, sym, side, price, qty } => {
                buf[3] = id(*oid);
                buf[4] = id(*acc);
                buf[5] = id(*sym);
                buf[6] = en(SIDE, *side);
                buf[7] = int(*price);
                buf[8] = int(*qty);
                9
            }
            K::Trade {
                sym, trade_id, price, qty, notional, maker_oid, taker_oid, maker_acc,
                taker_acc, taker_side, maker_fee, taker_fee,
            } => {
                buf[3] = id(*sym);
                buf[4] = int(*trade_id);
                buf[5] = int(*price);
                buf[6] = int(*qty);
                buf[7] = int(*notional);
                buf[8] = id(*maker_oid);
                buf[9] = id(*taker_oid);
                buf[10] = id(*maker_acc);
                buf[11] = id(*taker_acc);
                buf[12] = en(SIDE, *taker_side);
                buf[13] = int(*maker_fee);
                buf[14] = int(*taker_fee);
                15
            }
            K::Canceled { oid, acc, sym, reason, remaining, asset, released } => {
                buf[3] = id(*oid);
                buf[4] = id(*acc);
                buf[5] = id(*sym);
                buf[6] = en(CANCEL, *reason);
                buf[7] = int(*remaining);
                buf[8] = id(*asset);
                buf[9] = int(*released);
                10
            }
            _ => unreachable!(),
        };
        if buf[..n].iter().any(|p| p.is_null()) {
            for p in &buf[..n] {
                if !p.is_null() {
                    unsafe { ffi::Py_DECREF(*p) };
                }
            }
            return Err(PyErr::fetch(py));
        }
        unsafe { self.ctx.events[e.cls()].build_raw(py, &buf[..n]) }
    }

    /// `ev_to_py` for any event class, through its field values.
    fn ev_to_py_generic(&self, py: Python<'_>, e: &Ev) -> PyResult<*mut ffi::PyObject> {
        let vals = e.values();
        let mut buf = [std::ptr::null_mut(); MAX_FIELDS];
        for (n, v) in vals.as_slice().iter().enumerate() {
            let p = match *v {
                V::Id(id) => self.strs.py(py, id),
                V::R(r) => r.py(py),
                V::I(n) => self.ints.get(py, *n),
                V::B(b) => unsafe {
                    let p = if b { ffi::Py_True() } else { ffi::Py_False() };
                    ffi::Py_INCREF(p);
                    p
                },
                V::E(kind, idx) => self.ctx.enums[kind as usize][idx as usize].clone_ref(py).into_ptr(),
                V::D(d) => match d.py.get(py) {
                    Some(o) => o.clone_ref(py).into_ptr(),
                    None => match self.ctx.decimal.bind(py).call1((&*d.text,)) {
                        Ok(o) => {
                            let _ = d.py.set(py, o.clone().unbind());
                            o.into_ptr()
                        }
                        Err(err) => {
                            for q in &buf[..n] {
                                unsafe { ffi::Py_DECREF(*q) };
                            }
                            return Err(err);
                        }
                    },
                },
            };
            if p.is_null() {
                for q in &buf[..n] {
                    unsafe { ffi::Py_DECREF(*q) };
                }
                return Err(PyErr::fetch(py));
            }
            buf[n] = p;
        }
        unsafe { self.ctx.events[e.cls()].build_raw(py, &buf[..vals.n]) }
    }

    fn outcome(&self, py: Python<'_>, events: &[Ev], duplicate: bool) -> PyResult<PyObject> {
        unsafe {
            let tuple = ffi::PyTuple_New(events.len() as ffi::Py_ssize_t);
            if tuple.is_null() {
                return Err(PyErr::fetch(py));
            }
            for (i, e) in events.iter().enumerate() {
                match self.ev_to_py(py, e) {
                    Ok(obj) => ffi::PyTuple_SET_ITEM(tuple, i as ffi::Py_ssize_t, obj),
                    Err(err) => {
                        ffi::Py_DECREF(tuple); // unset items are NULL: tuples allow that here
                        return Err(err);
                    }
                }
            }
            let flag = if duplicate { ffi::Py_True() } else { ffi::Py_False() };
            ffi::Py_INCREF(flag);
            self.ctx.outcome.build(py, &[tuple, flag])
        }
    }

    /// Decide one command: its `Outcome`, and its events' payloads when `encoded`.
    fn handle_one(
        &mut self, py: Python<'_>, command: &Bound<'_, PyAny>, encoded: bool,
    ) -> PyResult<(PyObject, Option<PyObject>)> {
        self.pending.clear();
        let dup = self.decide(py, command)?;
        let (events, duplicate) = match &dup {
            Some(recorded) => (&recorded[..], true),
            None => (&self.pending[..], false),
        };
        let outcome = self.outcome(py, events, duplicate)?;
        if !encoded {
            return Ok((outcome, None));
        }
        let payloads = self.payloads(py, events)?;
        Ok((outcome, Some(payloads)))
    }

    /// `[canonical_json(e) for e in events]` as a list of bytes.
    fn payloads(&self, py: Python<'_>, events: &[Ev]) -> PyResult<PyObject> {
        let mut buf = String::with_capacity(512);
        unsafe {
            let list = ffi::PyList_New(events.len() as ffi::Py_ssize_t);
            if list.is_null() {
                return Err(PyErr::fetch(py));
            }
            let list = PyObject::from_owned_ptr(py, list);
            for (i, e) in events.iter().enumerate() {
                buf.clear();
                self.ev_json(e, &mut buf);
                let b = ffi::PyBytes_FromStringAndSize(buf.as_ptr() as *const _, buf.len() as ffi::Py_ssize_t);
                if b.is_null() {
                    return Err(PyErr::fetch(py));
                }
                ffi::PyList_SET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t, b);
            }
            Ok(list)
        }
    }

    /// Decide every command of `commands` (a list or tuple, or any iterable) in order.
    fn handle_seq(&mut self, py: Python<'_>, commands: &Bound<'_, PyAny>, encoded: bool) -> PyResult<PyObject> {
        let owned: Vec<Bound<'_, PyAny>>;
        let items: &[Bound<'_, PyAny>] = if let Ok(list) = commands.downcast::<PyList>() {
            owned = list.iter().collect();
            &owned
        } else if let Ok(tuple) = commands.downcast::<PyTuple>() {
            owned = tuple.iter().collect();
            &owned
        } else {
            owned = commands.iter()?.collect::<PyResult<_>>()?;
            &owned
        };
        unsafe {
            let out = ffi::PyList_New(items.len() as ffi::Py_ssize_t);
            if out.is_null() {
                return Err(PyErr::fetch(py));
            }
            let out = PyObject::from_owned_ptr(py, out);
            for (i, cmd) in items.iter().enumerate() {
                let (outcome, payloads) = self.handle_one(py, cmd, encoded)?;
                let item = match payloads {
                    None => outcome.into_ptr(),
                    Some(p) => {
                        let pair = ffi::PyTuple_New(2);
                        if pair.is_null() {
                            return Err(PyErr::fetch(py));
                        }
                        ffi::PyTuple_SET_ITEM(pair, 0, outcome.into_ptr());
                        ffi::PyTuple_SET_ITEM(pair, 1, p.into_ptr());
                        pair
                    }
                };
                ffi::PyList_SET_ITEM(out.as_ptr(), i as ffi::Py_ssize_t, item);
            }
            Ok(out)
        }
    }

    // ------------------------------------------------------------------ JSON
    fn ev_json(&self, e: &Ev, out: &mut String) {
        let vals = e.values();
        let vals = vals.as_slice();
        let cls = e.cls();
        let fields = &self.ctx.fields[cls];
        out.push('{');
        for (n, &i) in self.ctx.sorted[cls].iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            match i {
                ET => {
                    out.push_str("\"event_type\":");
                    write_str(out, EVENT_NAMES[cls]);
                }
                SV => out.push_str("\"schema_version\":1"),
                _ => {
                    write_str(out, fields[i].0);
                    out.push(':');
                    self.value_json(vals[i], out);
                }
            }
        }
        out.push('}');
    }

    fn value_json(&self, v: V<'_>, out: &mut String) {
        match v {
            V::Id(id) => write_str(out, self.strs.s(id)),
            V::R(r) => write_str(out, r.s()),
            V::I(n) => write_int(out, *n),
            V::B(b) => out.push_str(if b { "true" } else { "false" }),
            V::E(k, i) => write_str(out, ENUM_VALUES[k as usize][i as usize]),
            V::D(d) => write_str(out, &d.text),
        }
    }

    fn decode_err(&self, py: Python<'_>, msg: String) -> PyErr {
        match self.ctx.decode_error.bind(py).call1((msg,)) {
            Ok(exc) => PyErr::from_value_bound(exc),
            Err(e) => e,
        }
    }

    /// An event from its JSON form (`to_dict`), checked like `from_dict`.
    fn ev_from_json(&mut self, py: Python<'_>, j: &J<'_>) -> PyResult<Ev> {
        let J::Obj(items) = j else {
            return Err(self.decode_err(py, "an event must be a JSON object".into()));
        };
        let et = match j.get("event_type") {
            Some(J::Str(s)) => s.to_string(),
            other => return Err(self.decode_err(py, format!("unknown event_type {other:?}"))),
        };
        let Some(cls) = EVENT_NAMES.iter().position(|n| *n == et) else {
            return Err(self.decode_err(py, format!("unknown event_type '{et}'")));
        };
        match j.get("schema_version") {
            Some(J::Int(1)) => {}
            _ => {
                return Err(self.decode_err(
                    py,
                    format!("{et}: schema_version is not 1 (no upcaster)"),
                ))
            }
        }
        let fields = &self.ctx.fields[cls];
        let sorted = &self.ctx.sorted[cls];
        let mut vals: Vec<DV> = Vec::with_capacity(fields.len());
        for (fi, (name, kind)) in fields.iter().enumerate() {
            // canonical payloads have sorted keys: try the expected position first
            let pos = sorted.iter().position(|&s| s == fi).unwrap_or(0);
            let raw = match items.get(pos) {
                Some((k, v)) if k == name => v,
                _ => match items.iter().find(|(k, _)| k == name) {
                    Some((_, v)) => v,
                    None => {
                        return Err(self.decode_err(py, format!("{et}: missing field '{name}'")))
                    }
                },
            };
            let bad = |what: &str| format!("{et}.{name}: expected {what}, got {raw:?}");
            let v = match (kind, raw) {
                (FK::S, J::Str(s)) => DV::Id(self.strs.intern(s)),
                (FK::R, J::Str(s)) => DV::R(RStr::new(s)),
                (FK::I, J::Int(n)) => DV::I(*n),
                (FK::B, J::Bool(b)) => DV::B(*b),
                (FK::E(k), J::Str(s)) => match ENUM_VALUES[*k as usize].iter().position(|x| x == s) {
                    Some(i) => DV::E(i as u8),
                    None => {
                        let msg = format!("{et}.{name}: '{s}' is not a valid {}", ENUM_NAMES[*k as usize]);
                        return Err(self.decode_err(py, msg));
                    }
                },
                (FK::D, J::Str(s)) => {
                    if dec::parse(s).is_none() {
                        return Err(self.decode_err(py, bad("a decimal string")));
                    }
                    DV::D(DecV::new(s))
                }
                (FK::S | FK::R | FK::E(_), _) => return Err(self.decode_err(py, bad("a string"))),
                (FK::I, _) => return Err(self.decode_err(py, bad("an int"))),
                (FK::B, _) => return Err(self.decode_err(py, bad("a bool"))),
                (FK::D, _) => return Err(self.decode_err(py, bad("a decimal string"))),
            };
            vals.push(v);
        }
        Ok(assemble(cls, vals))
    }

    /// An event from a `domain.events` object.
    fn ev_from_py(&mut self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Ev> {
        let tp = obj.get_type();
        let mut cls = self.ctx.event_types.iter().position(|t| t.bind(py).is(&tp));
        if cls.is_none() {
            for (i, t) in self.ctx.event_types.iter().enumerate() {
                if obj.is_instance(t.bind(py))? {
                    cls = Some(i);
                    break;
                }
            }
        }
        let Some(cls) = cls else {
            return Err(PyTypeError::new_err(format!("unknown event {}", tp.name()?)));
        };
        let fields = self.ctx.fields[cls].clone();
        let mut vals = Vec::with_capacity(fields.len());
        for (name, kind) in fields {
            let raw = obj.getattr(name)?;
            vals.push(match kind {
                FK::S => DV::Id(self.strs.intern_py(raw.downcast::<PyString>()?)?),
                FK::R => DV::R(RStr::from_py(raw.downcast::<PyString>()?)?),
                FK::I => DV::I(raw.extract::<i128>()?),
                FK::B => DV::B(raw.is_truthy()?),
                FK::E(k) => DV::E(self.enum_idx(py, k, &raw)?),
                FK::D => {
                    let text = raw.str()?.to_str()?.to_string();
                    dec_of(&text)?;
                    DV::D(DecV::with_py(text, raw.clone()))
                }
            });
        }
        Ok(assemble(cls, vals))
    }

    fn enum_idx(&self, py: Python<'_>, kind: u8, obj: &Bound<'_, PyAny>) -> PyResult<u8> {
        let members = &self.ctx.enums[kind as usize];
        if let Some(i) = members.iter().position(|m| m.bind(py).is(obj)) {
            return Ok(i as u8);
        }
        Err(PyTypeError::new_err(format!(
            "expected a {} member, got {}",
            ENUM_NAMES[kind as usize],
            obj.repr()?
        )))
    }

    // ------------------------------------------------------------------ evolve
    fn inst_of(&self, sym: u32) -> PyResult<usize> {
        self.inst_idx
            .get(&sym)
            .copied()
            .ok_or_else(|| PyKeyError::new_err(self.strs.s(sym).to_string()))
    }

    fn account(&mut self, acc: u32) -> PyResult<&mut Account> {
        match self.accounts.get_mut(&acc) {
            Some(a) => Ok(a),
            None => Err(PyKeyError::new_err(self.strs.s(acc).to_string())),
        }
    }

    fn order_mut(&mut self, oid: u32) -> PyResult<&mut Order> {
        match self.orders.get_mut(&oid) {
            Some(o) => Ok(o),
            None => Err(PyKeyError::new_err(self.strs.s(oid).to_string())),
        }
    }

    /// `Exchange.apply`: mutate state by one event, then `_record_client_order`.
    fn apply_ev(&mut self, e: &Ev) -> PyResult<()> {
        match &e.k {
            K::Trade {
                sym, trade_id, price, qty, notional, maker_oid, taker_oid, taker_side,
                maker_fee, taker_fee, ..
            } => {
                let ii = self.inst_of(*sym)?;
                let maker = *self.order_mut(*maker_oid)?;
                let taker = *self.order_mut(*taker_oid)?;
                let inst = &self.insts[ii];
                let (quote, base, qatpl, bapl, max_fee) =
                    (inst.quote, inst.base, inst.qatpl, inst.bapl, inst.max_fee());
                let (buyer, seller, buyer_fee, seller_fee) = if *taker_side == BUY {
                    (taker, maker, *taker_fee, *maker_fee)
                } else {
                    (maker, taker, *maker_fee, *taker_fee)
                };
                let base_atoms = mul(*qty, bapl);
                let cost = notional + buyer_fee;
                let release = if buyer.budget {
                    cost
                } else {
                    let one = mul(buyer.price, qatpl);
                    mul(*qty, one + fee(one, max_fee))
                };
                {
                    let ba = self.account(buyer.acc)?;
                    let qb = ba.bal(quote);
                    qb.reserved -= release;
                    qb.available += release - cost;
                    ba.bal(base).available += base_atoms;
                }
                self.order_mut(buyer.oid)?.reserved -= release;
                {
                    let sa = self.account(seller.acc)?;
                    sa.bal(base).reserved -= base_atoms;
                    sa.bal(quote).available += notional - seller_fee;
                }
                self.order_mut(seller.oid)?.reserved -= base_atoms;
                *self.fees.entry(quote).or_insert(0) += buyer_fee + seller_fee;
                self.trade_seq = *trade_id;
                self.last_price.insert(*sym, *price);
                let m = self.order_mut(*maker_oid)?;
                m.remaining -= qty;
                if m.remaining == 0 {
                    let (mp, ms) = (m.price, m.side);
                    m.resting = false;
                    self.books[ii].side(ms).remove(mp, *maker_oid);
                    self.orders.remove(maker_oid);
                }
                if !taker.budget {
                    let t = self.order_mut(*taker_oid)?;
                    t.remaining -= qty;
                    if t.remaining == 0 {
                        self.orders.remove(taker_oid);
                    }
                }
            }
            K::Accepted {
                oid, acc, sym, coid, side, otype, tif, post_only, stp, price, qty, budget,
                asset, reserved,
            } => {
                self.order_seq += 1;
                self.used.insert(*oid);
                let order = Order {
                    oid: *oid, acc: *acc, sym: *sym, coid: *coid, side: *side, otype: *otype,
                    tif: *tif, post_only: *post_only, stp: *stp, price: *price, remaining: *qty,
                    budget: *budget > 0, asset: *asset, reserved: *reserved,
                    seq: self.order_seq, resting: false,
                };
                self.orders.insert(*oid, order);
                let b = self.account(*acc)?.bal(*asset);
                b.available -= reserved;
                b.reserved += reserved;
            }
            K::Rested { oid, sym, side, .. } => {
                let ii = self.inst_of(*sym)?;
                let o = self.order_mut(*oid)?;
                o.resting = true;
                let price = o.price;
                self.books[ii].side(*side).append(price, *oid);
            }
            K::Canceled { oid, acc, sym, asset, released, .. } => {
                let Some(order) = self.orders.remove(oid) else {
                    return Err(PyKeyError::new_err(self.strs.s(*oid).to_string()));
                };
                if order.resting {
                    let ii = self.inst_of(*sym)?;
                    self.books[ii].side(order.side).remove(order.price, *oid);
                }
                let b = self.account(*acc)?.bal(*asset);
                b.reserved -= released;
                b.available += released;
            }
            K::Amended { oid, acc, sym, new_price, new_qty, kept, reserved, .. } => {
                let ii = self.inst_of(*sym)?;
                let o = *self.order_mut(*oid)?;
                if !kept {
                    self.books[ii].side(o.side).remove(o.price, *oid);
                }
                let extra = reserved - o.reserved;
                {
                    let om = self.order_mut(*oid)?;
                    om.price = *new_price;
                    om.remaining = *new_qty;
                    om.reserved = *reserved;
                    if !kept {
                        om.resting = true;
                    }
                }
                let b = self.account(*acc)?.bal(o.asset);
                b.available -= extra;
                b.reserved += extra;
                if !kept {
                    self.books[ii].side(o.side).append(*new_price, *oid);
                }
            }
            K::Rejected { oid, reason, .. } => {
                if !matches!(
                    *reason,
                    R_DUPLICATE_CLIENT_ORDER_ID | R_DUPLICATE_ORDER_ID | R_INVALID_CLIENT_ORDER_ID
                ) {
                    self.used.insert(*oid);
                }
            }
            K::Deposited(acc, asset, n) => self.account(*acc)?.bal(*asset).available += n,
            K::Withdrawn(acc, asset, n) => self.account(*acc)?.bal(*asset).available -= n,
            K::Opened(acc) => {
                if self.accounts.insert(*acc, Account::default()).is_none() {
                    self.account_order.push(*acc);
                }
            }
            K::Listed(l) => {
                let inst = match build_instrument(&self.strs, l)? {
                    Ok(i) => i,
                    Err(msg) => return Err(PyValueError::new_err(msg)),
                };
                match self.inst_idx.get(&l.sym) {
                    Some(&ii) => {
                        self.insts[ii] = inst;
                        self.books[ii] = Book::default();
                    }
                    None => {
                        self.inst_idx.insert(l.sym, self.insts.len());
                        self.insts.push(inst);
                        self.books.push(Book::default());
                    }
                }
                self.asset_dec.insert(l.base, l.bdec);
                self.asset_dec.insert(l.quote, l.qdec);
            }
            K::Halted(sym) => {
                let ii = self.inst_of(*sym)?;
                self.insts[ii].halted = true;
            }
            K::Resumed(sym) => {
                let ii = self.inst_of(*sym)?;
                self.insts[ii].halted = false;
            }
            K::CmdRejected { .. } | K::WithdrawRej { .. } => {}
        }
        self.record(e);
        Ok(())
    }

    fn record(&mut self, e: &Ev) {
        let key = match &e.k {
            K::Accepted { acc, coid, oid, .. } => Some((*acc, *coid, *oid)),
            K::Rejected { acc, coid, oid, reason, .. }
                if !matches!(
                    *reason,
                    R_DUPLICATE_CLIENT_ORDER_ID | R_DUPLICATE_ORDER_ID | R_INVALID_CLIENT_ORDER_ID
                ) =>
            {
                Some((*acc, *coid, *oid))
            }
            _ => None,
        };
        if let Some((acc, coid, oid)) = key {
            let i = self.client.start(acc, coid, oid, &e.m);
            self.client.push(i, e, &e.m);
            self.recording = Some((i, e.m.clone()));
            return;
        }
        if let Some((i, m)) = &self.recording {
            if Arc::ptr_eq(m, &e.m) || m.cid.s() == e.m.cid.s() {
                self.client.push(*i, e, m);
            } else {
                self.recording = None;
            }
        }
    }

    fn emit(&mut self, e: Ev) -> PyResult<()> {
        self.apply_ev(&e)?;
        self.pending.push(e);
        Ok(())
    }

    // ------------------------------------------------------------------ decide
    fn reject_command(
        &mut self, cmd: &Bound<'_, PyAny>, m: &Arc<Meta>, subject: u32, reason: u8, detail: &str,
    ) -> PyResult<()> {
        let ctype = cmd.get_type().name()?.to_string();
        self.emit(Ev {
            m: m.clone(),
            k: K::CmdRejected { ctype: RStr::new(&ctype), subject, reason, detail: RStr::new(detail) },
        })
    }

    fn id_attr(&mut self, cmd: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> PyResult<u32> {
        let v = cmd.getattr(name)?;
        self.strs.intern_py(v.downcast::<PyString>()?)
    }

    /// Field `f` of a command of class `kind` (`CMD_FIELDS` position, after the meta fields):
    /// the slot itself for an exact command class, else ordinary attribute access.
    #[inline(always)]
    fn field<'py>(&self, cmd: &Bound<'py, PyAny>, kind: usize, f: usize) -> PyResult<Bound<'py, PyAny>> {
        match self.ctx.cmd_layouts[kind].slot(cmd, f) {
            // SAFETY: a live slot value of `cmd`, borrowed for as long as `cmd` is
            Some(p) => Ok(unsafe { Bound::from_borrowed_ptr(cmd.py(), p) }),
            None => Self::field_attr(cmd, kind, f),
        }
    }

    #[cold]
    #[inline(never)]
    fn field_attr<'py>(cmd: &Bound<'py, PyAny>, kind: usize, f: usize) -> PyResult<Bound<'py, PyAny>> {
        cmd.getattr(cmd_field_name(kind, f))
    }

    fn id_field(&mut self, cmd: &Bound<'_, PyAny>, kind: usize, f: usize) -> PyResult<u32> {
        let v = self.field(cmd, kind, f)?;
        self.strs.intern_py(v.downcast::<PyString>()?)
    }

    /// `dec_field` where it cannot fail: an exact command class whose field is `None` or an
    /// exact `Decimal` read from its C layout; None where `dec_field` must decide.
    #[inline]
    fn dec_slot(&self, cmd: &Bound<'_, PyAny>, kind: usize, f: usize) -> Option<Option<Dec>> {
        let p = self.ctx.cmd_layouts[kind].slot(cmd, f)?;
        unsafe {
            if p == ffi::Py_None() {
                return Some(None);
            }
            if self.ctx.decimal_raw && ffi::Py_TYPE(p) == self.ctx.decimal.as_ptr() as *mut ffi::PyTypeObject {
                // SAFETY: exactly `decimal.Decimal`, whose layout the start-up probes checked
                return read_mpd(p).map(Some);
            }
        }
        None
    }

    /// An optional `Decimal` field: read from its C layout when possible, else via `str()`.
    fn dec_field(&self, cmd: &Bound<'_, PyAny>, kind: usize, f: usize) -> PyResult<Option<Dec>> {
        let obj = self.field(cmd, kind, f)?;
        if obj.is_none() {
            return Ok(None);
        }
        if self.ctx.decimal_raw && unsafe { ffi::Py_TYPE(obj.as_ptr()) } == self.ctx.decimal.as_ptr() as *mut ffi::PyTypeObject {
            // SAFETY: exactly `decimal.Decimal`, whose layout the start-up probes checked
            if let Some(d) = unsafe { read_mpd(obj.as_ptr()) } {
                return Ok(Some(d));
            }
        }
        let text = obj.str()?.to_str()?.to_string();
        Ok(Some(dec_of(&text)?))
    }

    fn meta(&self, cmd: &Bound<'_, PyAny>, kind: usize) -> PyResult<Arc<Meta>> {
        let cid = self.field(cmd, kind, F_CID)?;
        let corr = self.field(cmd, kind, F_CORR)?;
        let ts = self.field(cmd, kind, F_TS)?;
        let exact = unsafe { ffi::PyLong_CheckExact(ts.as_ptr()) } != 0;
        Ok(Arc::new(Meta {
            cid: RStr::inline_from_py(cid.downcast::<PyString>()?)?,
            corr: RStr::inline_from_py(corr.downcast::<PyString>()?)?,
            ts: int_of(&ts)?,
            ts_py: if exact { Some(ts.unbind()) } else { None },
        }))
    }

    fn band(&self, ii: usize) -> (i128, i128) {
        let inst = &self.insts[ii];
        let reference = self.last_price.get(&inst.sym).copied().unwrap_or(inst.ref_ticks);
        inst.band(reference)
    }

    /// Decide `cmd` into `self.pending`; a repeated PlaceOrder gives its recorded events.
    fn decide(&mut self, py: Python<'_>, cmd: &Bound<'_, PyAny>) -> PyResult<Option<Vec<Ev>>> {
        // the command was built long before: start loading the rest of it now
        let raw = cmd.as_ptr() as *const u8;
        prefetch(raw.wrapping_add(64));
        prefetch(raw.wrapping_add(128));
        let tp = cmd.get_type();
        let mut kind = self.ctx.commands.iter().position(|t| t.bind(py).is(&tp));
        if kind.is_none() {
            for (i, t) in self.ctx.commands.iter().enumerate() {
                if cmd.is_instance(t.bind(py))? {
                    kind = Some(i);
                    break;
                }
            }
        }
        let Some(kind) = kind else {
            return Err(PyTypeError::new_err(format!("unknown command {}", tp.name()?)));
        };
        self.ctx.cmd_layouts[kind].prefetch_fields(cmd);
        if kind == CMD_PLACE {
            // usually new ids: start both table reads (cache misses) before any other work
            for f in [P_OID, P_COID] {
                if let Some(p) = self.ctx.cmd_layouts[kind].slot(cmd, f) {
                    // SAFETY: a live slot value of `cmd`, borrowed for as long as `cmd` is
                    let obj = unsafe { Bound::from_borrowed_ptr(py, p) };
                    if let Ok(Ok(text)) = obj.downcast::<PyString>().map(|s| s.to_str()) {
                        self.strs.prefetch(text);
                    }
                }
            }
        }
        let m = self.meta(cmd, kind)?;
        match kind {
            CMD_PLACE => return self.place_order(py, cmd, &m),
            CMD_CANCEL => self.cancel_order(cmd, &m)?,
            CMD_AMEND => self.amend_order(cmd, &m)?,
            CMD_CANCEL_ALL => self.cancel_all(py, cmd, &m)?,
            CMD_DEPOSIT | CMD_WITHDRAW => self.funds(py, cmd, &m, kind == CMD_DEPOSIT)?,
            CMD_OPEN => {
                let acc = self.id_attr(cmd, intern!(py, "account_id"))?;
                if self.accounts.contains_key(&acc) {
                    self.reject_command(cmd, &m, acc, R_ACCOUNT_EXISTS, "")?;
                } else {
                    self.emit(Ev { m, k: K::Opened(acc) })?;
                }
            }
            CMD_LIST => self.list_instrument(py, cmd, &m)?,
            _ => {
                let sym = self.id_attr(cmd, intern!(py, "symbol"))?;
                let halt = kind == CMD_HALT;
                match self.inst_idx.get(&sym).copied() {
                    None => self.reject_command(cmd, &m, sym, R_UNKNOWN_SYMBOL, "")?,
                    Some(ii) if halt && self.insts[ii].halted => {
                        self.reject_command(cmd, &m, sym, R_ALREADY_HALTED, "")?
                    }
                    Some(ii) if !halt && !self.insts[ii].halted => {
                        self.reject_command(cmd, &m, sym, R_NOT_HALTED, "")?
                    }
                    Some(_) => {
                        let k = if halt { K::Halted(sym) } else { K::Resumed(sym) };
                        self.emit(Ev { m, k })?
                    }
                }
            }
        }
        Ok(None)
    }

    fn list_instrument(&mut self, py: Python<'_>, cmd: &Bound<'_, PyAny>, m: &Arc<Meta>) -> PyResult<()> {
        let sym = self.id_attr(cmd, intern!(py, "symbol"))?;
        if self.inst_idx.contains_key(&sym) {
            return self.reject_command(cmd, m, sym, R_INSTRUMENT_EXISTS, "");
        }
        let base = self.id_attr(cmd, intern!(py, "base"))?;
        let quote = self.id_attr(cmd, intern!(py, "quote"))?;
        let d = |name: &str| -> PyResult<Arc<DecV>> {
            let obj = cmd.getattr(name)?;
            let text = obj.str()?.to_str()?.to_string();
            Ok(DecV::with_py(text, obj))
        };
        let i = |name: &str| -> PyResult<i128> { cmd.getattr(name)?.extract::<i128>() };
        let listed = Listed {
            sym, base, quote,
            bdec: i("base_decimals")?, qdec: i("quote_decimals")?,
            tick: d("tick_size")?, lot: d("lot_size")?, min: d("min_qty")?, max: d("max_qty")?,
            refp: d("reference_price")?,
            band: i("price_band_bps")?, maker: i("maker_fee_bps")?, taker: i("taker_fee_bps")?,
        };
        if let Err(msg) = build_instrument(&self.strs, &listed)? {
            return self.reject_command(cmd, m, sym, R_INVALID_INSTRUMENT, &msg);
        }
        for (asset, decimals) in [(base, listed.bdec), (quote, listed.qdec)] {
            if let Some(&known) = self.asset_dec.get(&asset) {
                if known != decimals {
                    let detail = format!("{} has {}", self.strs.s(asset), known);
                    return self.reject_command(cmd, m, sym, R_ASSET_DECIMALS_MISMATCH, &detail);
                }
            }
        }
        self.emit(Ev { m: m.clone(), k: K::Listed(Arc::new(listed)) })
    }

    fn funds(&mut self, py: Python<'_>, cmd: &Bound<'_, PyAny>, m: &Arc<Meta>, deposit: bool) -> PyResult<()> {
        let acc = self.id_attr(cmd, intern!(py, "account_id"))?;
        let asset = self.id_attr(cmd, intern!(py, "asset"))?;
        let amount_obj = cmd.getattr(intern!(py, "amount"))?;
        let text = amount_obj.str()?.to_str()?.to_string();
        let decided: Decided<i128> = (|| {
            if !self.accounts.contains_key(&acc) {
                return rej(R_UNKNOWN_ACCOUNT);
            }
            let Some(&decimals) = self.asset_dec.get(&asset) else {
                return rej(R_UNKNOWN_ASSET);
            };
            let value = match dec::parse(&text) {
                Some(v) => v,
                None => return Err(Rej::R(255, text.clone())), // overflow, raised below
            };
            let atoms = match dec::to_units(&value, &dec::atom(decimals as i64)) {
                Ok(a) => a,
                Err(err) => {
                    let detail = conv_detail(&err, &text, &dec::atom_text(decimals as i64));
                    return Err(Rej::R(R_INVALID_AMOUNT, detail));
                }
            };
            if atoms <= 0 {
                return Err(Rej::R(R_INVALID_AMOUNT, "amount must be positive".into()));
            }
            if deposit {
                if atoms >= dec::HUGE {
                    return Err(Rej::R(R_INVALID_AMOUNT, "amount reaches 10^36 atoms: too large".into()));
                }
                let held = self.accounts[&acc].get(asset).map_or(0, |b| b.available + b.reserved);
                if held + atoms >= dec::HUGE {
                    return Err(Rej::R(R_INVALID_AMOUNT, "the balance would reach 10^36 atoms".into()));
                }
            } else if self.accounts[&acc].available(asset) < atoms {
                return rej(R_INSUFFICIENT_FUNDS);
            }
            Ok(atoms)
        })();
        match decided {
            Ok(atoms) => {
                let k = if deposit { K::Deposited(acc, asset, atoms) } else { K::Withdrawn(acc, asset, atoms) };
                self.emit(Ev { m: m.clone(), k })
            }
            Err(Rej::R(255, _)) => Err(dec_of(&text).err().unwrap()),
            Err(Rej::R(reason, detail)) => {
                if deposit {
                    self.reject_command(cmd, m, acc, reason, &detail)
                } else {
                    let requested = DecV::with_py(text, amount_obj);
                    self.emit(Ev {
                        m: m.clone(),
                        k: K::WithdrawRej { acc, asset, requested, reason },
                    })
                }
            }
        }
    }

    fn place_order(&mut self, py: Python<'_>, cmd: &Bound<'_, PyAny>, m: &Arc<Meta>) -> PyResult<Option<Vec<Ev>>> {
        const K: usize = CMD_PLACE;
        let oid_obj = self.field(cmd, K, P_OID)?;
        let coid_obj = self.field(cmd, K, P_COID)?;
        // the amounts now (reads that cannot fail), while the id table reads started in
        // `decide` are in flight
        let amounts = [P_PRICE, P_QTY, P_BUDGET].map(|f| self.dec_slot(cmd, K, f));
        let acc = self.id_field(cmd, K, P_ACC)?;
        let sym = self.id_field(cmd, K, P_SYM)?;
        let oid = self.strs.intern_py(oid_obj.downcast::<PyString>()?)?;
        let coid = self.strs.intern_py(coid_obj.downcast::<PyString>()?)?;
        let coid_empty = self.strs.s(coid).is_empty();
        let side = self.enum_idx(py, SIDE, &self.field(cmd, K, P_SIDE)?)?;
        let otype = self.enum_idx(py, OTYPE, &self.field(cmd, K, P_OTYPE)?)?;
        let tif = self.enum_idx(py, TIF, &self.field(cmd, K, P_TIF)?)?;
        let stp = self.enum_idx(py, STP, &self.field(cmd, K, P_STP)?)?;
        let post_only = self.field(cmd, K, P_POST)?.is_truthy()?;
        if !coid_empty {
            if let Some(prior) = self.client.get(acc, coid) {
                if prior.oid == oid {
                    return Ok(Some(self.client.events(prior)));
                }
                self.emit(Ev { m: m.clone(), k: K::Rejected { oid, acc, sym, coid, reason: R_DUPLICATE_CLIENT_ORDER_ID } })?;
                return Ok(None);
            }
        }
        let decided = if coid_empty {
            rej(R_INVALID_CLIENT_ORDER_ID)
        } else if self.used.contains(&oid) {
            rej(R_DUPLICATE_ORDER_ID)
        } else {
            let [price, qty, budget] = amounts;
            let price = match price { Some(v) => v, None => self.dec_field(cmd, K, P_PRICE)? };
            let qty = match qty { Some(v) => v, None => self.dec_field(cmd, K, P_QTY)? };
            let budget = match budget { Some(v) => v, None => self.dec_field(cmd, K, P_BUDGET)? };
            self.validate(acc, sym, side, otype, tif, post_only, price, qty, budget)
        };
        let (ii, price, lots, budget, asset, reserve) = match decided {
            Ok(v) => v,
            Err(Rej::R(reason, _)) => {
                self.emit(Ev { m: m.clone(), k: K::Rejected { oid, acc, sym, coid, reason } })?;
                return Ok(None);
            }
        };
        self.emit(Ev {
            m: m.clone(),
            k: K::Accepted {
                oid, acc, sym, coid, side, otype, tif, post_only, stp, price, qty: lots, budget,
                asset, reserved: reserve,
            },
        })?;
        if tif == FOK && !self.fok_fillable(oid, ii) {
            return self.cancel(oid, C_FOK_UNFILLED, m).map(|_| None);
        }
        let ended = self.match_order(oid, ii, m)?;
        if ended == TAKER_CANCELED || ended == FILLED {
            return Ok(None);
        }
        if otype != LIMIT {
            let reason = if ended == BUDGET_EXHAUSTED { C_BUDGET_EXHAUSTED } else { C_MARKET_NO_LIQUIDITY };
            self.cancel(oid, reason, m)?;
        } else if tif == GTC {
            let o = self.orders[&oid];
            self.emit(Ev {
                m: m.clone(),
                k: K::Rested { oid, acc: o.acc, sym: o.sym, side: o.side, price: o.price, qty: o.remaining },
            })?;
        } else {
            self.cancel(oid, C_IOC_REMAINDER, m)?;
        }
        Ok(None)
    }

    fn validate(
        &self, acc: u32, sym: u32, side: u8, otype: u8, tif: u8, post_only: bool,
        price_in: Option<Dec>, qty_in: Option<Dec>, budget_in: Option<Dec>,
    ) -> Decided<(usize, i128, i128, i128, u32, i128)> {
        let Some(account) = self.accounts.get(&acc) else { return rej(R_UNKNOWN_ACCOUNT) };
        let Some(&ii) = self.inst_idx.get(&sym) else { return rej(R_UNKNOWN_SYMBOL) };
        let inst = &self.insts[ii];
        if inst.halted {
            return rej(R_TRADING_HALTED);
        }
        let is_buy = side == BUY;
        if otype == LIMIT {
            if price_in.is_none() {
                return rej(R_INVALID_PRICE);
            }
            if qty_in.is_none() || budget_in.is_some() {
                return rej(R_INVALID_QUANTITY);
            }
            if post_only && tif != GTC {
                return rej(R_INVALID_POST_ONLY);
            }
        } else {
            if price_in.is_some() {
                return rej(R_INVALID_PRICE);
            }
            if post_only {
                return rej(R_INVALID_POST_ONLY);
            }
            if qty_in.is_none() == budget_in.is_none() {
                return rej(R_INVALID_QUANTITY);
            }
            if budget_in.is_some() && !is_buy {
                return rej(R_INVALID_QUANTITY);
            }
            if budget_in.is_some() && tif == FOK {
                return rej(R_INVALID_TIME_IN_FORCE);
            }
        }
        let mut lots = 0;
        if let Some(q) = &qty_in {
            lots = match dec::to_units(q, &inst.lot) {
                Ok(v) => v,
                Err(_) => return rej(R_LOT_SIZE),
            };
            if lots <= 0 {
                return rej(R_INVALID_QUANTITY);
            }
            if lots < inst.min_lots {
                return rej(R_MIN_QTY);
            }
            if lots > inst.max_lots {
                return rej(R_MAX_QTY);
            }
        }
        let mut budget = 0;
        if let Some(b) = &budget_in {
            budget = match dec::to_units(b, &dec::atom(inst.qdec as i64)) {
                Ok(v) => v,
                Err(_) => return rej(R_INVALID_AMOUNT),
            };
            if budget <= 0 {
                return rej(R_INVALID_AMOUNT);
            }
        }
        let (low, high) = self.band(ii);
        let price = if let Some(p) = &price_in {
            let price = match dec::to_units(p, &inst.tick) {
                Ok(v) => v,
                Err(_) => return rej(R_TICK_SIZE),
            };
            if price <= 0 {
                return rej(R_INVALID_PRICE);
            }
            if price < low || price > high {
                return rej(R_PRICE_BAND);
            }
            if post_only && self.books[ii].crosses(side, price) {
                return rej(R_POST_ONLY_WOULD_TAKE);
            }
            price
        } else if is_buy {
            high
        } else {
            low
        };
        let (asset, need) = if is_buy {
            let need = if budget != 0 { budget } else { mul(lots, inst.buy_unit_cost(price)) };
            (inst.quote, need)
        } else {
            (inst.base, mul(lots, inst.bapl))
        };
        if account.available(asset) < need {
            return rej(R_INSUFFICIENT_FUNDS);
        }
        Ok((ii, price, lots, budget, asset, need))
    }

    fn fok_fillable(&self, oid: u32, ii: usize) -> bool {
        let order = &self.orders[&oid];
        let mut need = order.remaining;
        let is_buy = order.side == BUY;
        let book = &self.books[ii];
        let check = |price: i128, q: &std::collections::VecDeque<u32>, need: &mut i128| -> Option<bool> {
            if (is_buy && price > order.price) || (!is_buy && price < order.price) {
                return Some(false);
            }
            for maker_oid in q {
                let maker = &self.orders[maker_oid];
                if maker.acc == order.acc {
                    if order.stp == CANCEL_MAKER {
                        continue;
                    }
                    return Some(false);
                }
                *need -= maker.remaining;
                if *need <= 0 {
                    return Some(true);
                }
            }
            None
        };
        if is_buy {
            for (&p, q) in book.asks.levels.iter() {
                if let Some(r) = check(p, q, &mut need) {
                    return r;
                }
            }
        } else {
            for (&p, q) in book.bids.levels.iter().rev() {
                if let Some(r) = check(p, q, &mut need) {
                    return r;
                }
            }
        }
        false
    }

    fn match_order(&mut self, oid: u32, ii: usize, m: &Arc<Meta>) -> PyResult<u8> {
        let order = self.orders[&oid];
        let is_buy = order.side == BUY;
        let limit = order.price;
        loop {
            let book = &self.books[ii];
            let best = if is_buy {
                match book.asks.levels.iter().next() {
                    Some((&p, q)) if p <= limit => (p, q[0]),
                    _ => return Ok(NO_LIQUIDITY),
                }
            } else {
                match book.bids.levels.iter().next_back() {
                    Some((&p, q)) if p >= limit => (p, q[0]),
                    _ => return Ok(NO_LIQUIDITY),
                }
            };
            let (best, maker_oid) = best;
            let maker = self.orders[&maker_oid];
            let taker = self.orders[&oid];
            if maker.acc == taker.acc {
                if taker.stp != CANCEL_TAKER {
                    self.cancel(maker_oid, C_SELF_TRADE_PREVENTION, m)?;
                }
                if taker.stp != CANCEL_MAKER {
                    self.cancel(oid, C_SELF_TRADE_PREVENTION, m)?;
                    return Ok(TAKER_CANCELED);
                }
                continue;
            }
            let inst = &self.insts[ii];
            let qty = if taker.budget {
                let mut qty = taker.reserved.div_euclid(inst.taker_unit_cost(best));
                if qty > maker.remaining {
                    qty = maker.remaining;
                }
                if qty <= 0 {
                    return Ok(BUDGET_EXHAUSTED);
                }
                qty
            } else if maker.remaining < taker.remaining {
                maker.remaining
            } else {
                taker.remaining
            };
            let notional = mul(mul(best, qty), inst.qatpl);
            let k = K::Trade {
                sym: taker.sym,
                trade_id: self.trade_seq + 1,
                price: best,
                qty,
                notional,
                maker_oid,
                taker_oid: oid,
                maker_acc: maker.acc,
                taker_acc: taker.acc,
                taker_side: taker.side,
                maker_fee: fee(notional, inst.maker),
                taker_fee: fee(notional, inst.taker),
            };
            self.emit(Ev { m: m.clone(), k })?;
            if !taker.budget && !self.orders.contains_key(&oid) {
                return Ok(FILLED);
            }
        }
    }

    fn cancel(&mut self, oid: u32, reason: u8, m: &Arc<Meta>) -> PyResult<()> {
        let o = self.orders[&oid];
        self.emit(Ev {
            m: m.clone(),
            k: K::Canceled {
                oid, acc: o.acc, sym: o.sym, reason, remaining: o.remaining, asset: o.asset,
                released: o.reserved,
            },
        })
    }

    fn owned(&self, acc: u32, oid: u32) -> Decided<Order> {
        match self.orders.get(&oid) {
            None => rej(R_UNKNOWN_ORDER),
            Some(o) if o.acc != acc => rej(R_NOT_ORDER_OWNER),
            Some(o) => Ok(*o),
        }
    }

    fn cancel_order(&mut self, cmd: &Bound<'_, PyAny>, m: &Arc<Meta>) -> PyResult<()> {
        let acc = self.id_field(cmd, CMD_CANCEL, C_ACC)?;
        let oid = self.id_field(cmd, CMD_CANCEL, C_OID)?;
        match self.owned(acc, oid) {
            Ok(_) => self.cancel(oid, C_REQUESTED, m),
            Err(Rej::R(reason, _)) => self.reject_command(cmd, m, oid, reason, ""),
        }
    }

    fn cancel_all(&mut self, py: Python<'_>, cmd: &Bound<'_, PyAny>, m: &Arc<Meta>) -> PyResult<()> {
        let acc = self.id_attr(cmd, intern!(py, "account_id"))?;
        let sym_obj = cmd.getattr(intern!(py, "symbol"))?;
        let sym = if sym_obj.is_none() { None } else { Some(self.strs.intern_py(sym_obj.downcast::<PyString>()?)?) };
        if !self.accounts.contains_key(&acc) {
            return self.reject_command(cmd, m, acc, R_UNKNOWN_ACCOUNT, "");
        }
        if let Some(s) = sym {
            if !self.inst_idx.contains_key(&s) {
                return self.reject_command(cmd, m, s, R_UNKNOWN_SYMBOL, "");
            }
        }
        let mut mine: Vec<(i128, u32)> = self
            .orders
            .values()
            .filter(|o| o.acc == acc && sym.is_none_or(|s| o.sym == s))
            .map(|o| (o.seq, o.oid))
            .collect();
        mine.sort_unstable();
        for (_, oid) in mine {
            self.cancel(oid, C_CANCEL_ALL, m)?;
        }
        Ok(())
    }

    fn amend_order(&mut self, cmd: &Bound<'_, PyAny>, m: &Arc<Meta>) -> PyResult<()> {
        let acc = self.id_field(cmd, CMD_AMEND, C_ACC)?;
        let oid = self.id_field(cmd, CMD_AMEND, C_OID)?;
        let new_price = self.dec_field(cmd, CMD_AMEND, A_PRICE)?;
        let new_qty = self.dec_field(cmd, CMD_AMEND, A_QTY)?;
        let decided: Decided<(Order, i128, i128, i128)> = (|| {
            let order = self.owned(acc, oid)?;
            let ii = self.inst_idx[&order.sym];
            let inst = &self.insts[ii];
            if inst.halted {
                return rej(R_TRADING_HALTED);
            }
            if new_price.is_none() && new_qty.is_none() {
                return rej(R_NOTHING_TO_AMEND);
            }
            let mut price = order.price;
            if let Some(p) = &new_price {
                price = match dec::to_units(p, &inst.tick) {
                    Ok(v) => v,
                    Err(_) => return rej(R_TICK_SIZE),
                };
                if price <= 0 {
                    return rej(R_INVALID_PRICE);
                }
                let (low, high) = self.band(ii);
                if price < low || price > high {
                    return rej(R_PRICE_BAND);
                }
            }
            let mut lots = order.remaining;
            if let Some(q) = &new_qty {
                lots = match dec::to_units(q, &inst.lot) {
                    Ok(v) => v,
                    Err(_) => return rej(R_LOT_SIZE),
                };
                if lots <= 0 {
                    return rej(R_INVALID_QUANTITY);
                }
                if lots > inst.max_lots {
                    return rej(R_MAX_QTY);
                }
            }
            if price == order.price && lots == order.remaining {
                return rej(R_NOTHING_TO_AMEND);
            }
            if price != order.price && self.books[ii].crosses(order.side, price) {
                return rej(R_AMEND_WOULD_TAKE);
            }
            let reserve = if order.side == BUY { mul(lots, inst.buy_unit_cost(price)) } else { mul(lots, inst.bapl) };
            let extra = reserve - order.reserved;
            if extra > self.accounts[&order.acc].available(order.asset) {
                return rej(R_INSUFFICIENT_FUNDS);
            }
            Ok((order, price, lots, reserve))
        })();
        match decided {
            Err(Rej::R(reason, _)) => self.reject_command(cmd, m, oid, reason, ""),
            Ok((order, price, lots, reserve)) => self.emit(Ev {
                m: m.clone(),
                k: K::Amended {
                    oid, acc: order.acc, sym: order.sym, old_price: order.price, new_price: price,
                    old_qty: order.remaining, new_qty: lots,
                    kept: price == order.price && lots < order.remaining, reserved: reserve,
                },
            }),
        }
    }

    // ------------------------------------------------------------------ snapshots
    /// The snapshot as canonical JSON; without `full`, the idempotency records and used order
    /// ids (which grow with every order) are left empty: the cheap form the views read.
    fn snapshot_text_of(&self, full: bool) -> String {
        self.snapshot_text_with(full, true)
    }

    /// The snapshot's JSON; without `full` no idempotency records or used ids; without
    /// `market` no books and no open orders (the parts that grow with the market).
    fn snapshot_text_with(&self, full: bool, market: bool) -> String {
        let s = |id: u32| self.strs.s(id);
        let mut out = String::with_capacity(1 << 16);
        let sorted_ids = |ids: &mut Vec<u32>| ids.sort_unstable_by(|a, b| s(*a).cmp(s(*b)));
        out.push_str("{\"accounts\":{");
        let mut accs: Vec<u32> = self.accounts.keys().copied().collect();
        sorted_ids(&mut accs);
        for (n, acc) in accs.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_str(&mut out, s(*acc));
            out.push_str(":{");
            let mut bals = self.accounts[acc].bals.clone();
            bals.sort_unstable_by(|a, b| s(a.0).cmp(s(b.0)));
            for (k, (asset, b)) in bals.iter().enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_str(&mut out, s(*asset));
                out.push_str(&format!(":[{},{}]", b.available, b.reserved));
            }
            out.push('}');
        }
        out.push_str("},\"asset_decimals\":");
        self.int_map(&mut out, &self.asset_dec);
        out.push_str(",\"books\":{");
        let mut syms: Vec<usize> = (0..self.insts.len()).collect();
        syms.sort_unstable_by(|a, b| s(self.insts[*a].sym).cmp(s(self.insts[*b].sym)));
        for (n, ii) in syms.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_str(&mut out, s(self.insts[*ii].sym));
            for (k, bids) in [(0, false), (1, true)] {
                out.push_str(if k == 0 { ":{\"asks\":[" } else { "],\"bids\":[" });
                let ids = if market { self.books[*ii].ids_by_priority(bids) } else { Vec::new() };
                for (j, oid) in ids.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_str(&mut out, s(*oid));
                }
            }
            out.push_str("]}");
        }
        out.push_str("},\"client_orders\":[");
        let mut recs: Vec<&Record> = if full { self.client.iter().collect() } else { Vec::new() };
        recs.sort_unstable_by(|a, b| (s(a.acc), s(a.coid)).cmp(&(s(b.acc), s(b.coid))));
        for (n, rec) in recs.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push('[');
            write_str(&mut out, s(rec.acc));
            out.push(',');
            write_str(&mut out, s(rec.coid));
            out.push(',');
            write_str(&mut out, s(rec.oid));
            out.push_str(",[");
            for (j, e) in self.client.events(rec).iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                self.ev_json(e, &mut out);
            }
            out.push_str("]]");
        }
        out.push_str("],\"fees\":");
        self.int_map(&mut out, &self.fees);
        out.push_str(&format!(",\"format\":{SNAPSHOT_FORMAT},\"instruments\":{{"));
        for (n, ii) in syms.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let i = &self.insts[*ii];
            write_str(&mut out, s(i.sym));
            out.push_str(":{\"base\":");
            write_str(&mut out, s(i.base));
            out.push_str(&format!(
                ",\"base_atoms_per_lot\":{},\"base_decimals\":{},\"lot_size\":",
                i.bapl, i.bdec
            ));
            write_str(&mut out, &i.lot_text.text);
            out.push_str(&format!(
                ",\"maker_fee_bps\":{},\"max_qty_lots\":{},\"min_qty_lots\":{},\"price_band_bps\":{},\"quote\":",
                i.maker, i.max_lots, i.min_lots, i.band
            ));
            write_str(&mut out, s(i.quote));
            out.push_str(&format!(
                ",\"quote_atoms_per_tick_lot\":{},\"quote_decimals\":{},\"reference_price_ticks\":{},\"status\":\"{}\",\"symbol\":",
                i.qatpl, i.qdec, i.ref_ticks, if i.halted { "halted" } else { "trading" }
            ));
            write_str(&mut out, s(i.sym));
            out.push_str(&format!(",\"taker_fee_bps\":{},\"tick_size\":", i.taker));
            write_str(&mut out, &i.tick_text.text);
            out.push('}');
        }
        out.push_str("},\"last_price\":");
        self.int_map(&mut out, &self.last_price);
        out.push_str(&format!(",\"order_seq\":{},\"orders\":[", self.order_seq));
        let mut orders: Vec<&Order> =
            if market { self.orders.values().collect() } else { Vec::new() };
        orders.sort_unstable_by_key(|o| o.seq);
        for (n, o) in orders.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str("{\"account_id\":");
            write_str(&mut out, s(o.acc));
            out.push_str(&format!(",\"budget\":{},\"client_order_id\":", o.budget));
            write_str(&mut out, s(o.coid));
            out.push_str(",\"order_id\":");
            write_str(&mut out, s(o.oid));
            out.push_str(&format!(
                ",\"order_type\":\"{}\",\"post_only\":{},\"price_ticks\":{},\"remaining_lots\":{},\"reserved_asset\":",
                ENUM_VALUES[OTYPE as usize][o.otype as usize], o.post_only, o.price, o.remaining
            ));
            write_str(&mut out, s(o.asset));
            out.push_str(&format!(
                ",\"reserved_atoms\":{},\"seq\":{},\"side\":\"{}\",\"stp\":\"{}\",\"symbol\":",
                o.reserved,
                o.seq,
                ENUM_VALUES[SIDE as usize][o.side as usize],
                ENUM_VALUES[STP as usize][o.stp as usize]
            ));
            write_str(&mut out, s(o.sym));
            out.push_str(&format!(
                ",\"time_in_force\":\"{}\"}}",
                ENUM_VALUES[TIF as usize][o.tif as usize]
            ));
        }
        out.push_str(&format!("],\"trade_seq\":{},\"used_order_ids\":[", self.trade_seq));
        let mut used: Vec<u32> =
            if full { self.used.ids() } else { Vec::new() };
        sorted_ids(&mut used);
        for (n, oid) in used.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_str(&mut out, s(*oid));
        }
        out.push_str("]}");
        out
    }

    fn snapshot_text(&self) -> String {
        self.snapshot_text_of(true)
    }

    fn int_map(&self, out: &mut String, map: &FxMap<u32, i128>) {
        let mut keys: Vec<(&str, i128)> = map.iter().map(|(k, v)| (self.strs.s(*k), *v)).collect();
        keys.sort_unstable();
        out.push('{');
        for (n, (k, v)) in keys.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            write_str(out, k);
            out.push_str(&format!(":{v}"));
        }
        out.push('}');
    }

    fn load_snapshot(&mut self, py: Python<'_>, data: &J<'_>) -> PyResult<()> {
        let bad = |what: &str| PyValueError::new_err(format!("snapshot: bad {what}"));
        let obj = |j: Option<&J<'_>>, what: &str| -> PyResult<Vec<(String, J<'static>)>> {
            match j {
                Some(J::Obj(items)) => Ok(items.iter().map(|(k, v)| (k.to_string(), own(v))).collect()),
                _ => Err(bad(what)),
            }
        };
        let int = |j: &J<'_>, what: &str| -> PyResult<i128> {
            match j {
                J::Int(n) => Ok(*n),
                J::Str(s) => s.parse::<i128>().map_err(|_| bad(what)),
                _ => Err(bad(what)),
            }
        };
        let text = |j: Option<&J<'_>>, what: &str| -> PyResult<String> {
            match j {
                Some(J::Str(s)) => Ok(s.to_string()),
                _ => Err(bad(what)),
            }
        };
        match data.get("format") {
            Some(J::Int(SNAPSHOT_FORMAT)) => {}
            other => {
                return Err(PyValueError::new_err(format!("unsupported snapshot format {other:?}")))
            }
        }
        for (sym, raw) in obj(data.get("instruments"), "instruments")? {
            let g = |k: &str| raw.get(k).ok_or_else(|| bad(k));
            let tick_text = text(raw.get("tick_size"), "tick_size")?;
            let lot_text = text(raw.get("lot_size"), "lot_size")?;
            let sym_id = self.strs.intern(&sym);
            let inst = Inst {
                sym: sym_id,
                base: self.strs.intern(&text(raw.get("base"), "base")?),
                quote: self.strs.intern(&text(raw.get("quote"), "quote")?),
                bdec: int(g("base_decimals")?, "base_decimals")?,
                qdec: int(g("quote_decimals")?, "quote_decimals")?,
                tick: dec_of(&tick_text)?,
                tick_text: DecV::new(&tick_text),
                lot: dec_of(&lot_text)?,
                lot_text: DecV::new(&lot_text),
                min_lots: int(g("min_qty_lots")?, "min_qty_lots")?,
                max_lots: int(g("max_qty_lots")?, "max_qty_lots")?,
                ref_ticks: int(g("reference_price_ticks")?, "reference_price_ticks")?,
                band: int(g("price_band_bps")?, "price_band_bps")?,
                maker: int(g("maker_fee_bps")?, "maker_fee_bps")?,
                taker: int(g("taker_fee_bps")?, "taker_fee_bps")?,
                halted: text(raw.get("status"), "status")? == "halted",
                qatpl: int(g("quote_atoms_per_tick_lot")?, "quote_atoms_per_tick_lot")?,
                bapl: int(g("base_atoms_per_lot")?, "base_atoms_per_lot")?,
                band_memo: std::cell::Cell::new(NO_BAND),
            };
            self.inst_idx.insert(sym_id, self.insts.len());
            self.insts.push(inst);
            self.books.push(Book::default());
        }
        for (k, v) in obj(data.get("last_price"), "last_price")? {
            let id = self.strs.intern(&k);
            self.last_price.insert(id, int(&v, "last_price")?);
        }
        for (k, v) in obj(data.get("asset_decimals"), "asset_decimals")? {
            let id = self.strs.intern(&k);
            self.asset_dec.insert(id, int(&v, "asset_decimals")?);
        }
        for (acc, bals) in obj(data.get("accounts"), "accounts")? {
            let acc_id = self.strs.intern(&acc);
            let mut account = Account::default();
            for (asset, pair) in obj(Some(&bals), "balances")? {
                let J::Arr(p) = &pair else { return Err(bad("balance")) };
                if p.len() != 2 {
                    return Err(bad("balance"));
                }
                let asset_id = self.strs.intern(&asset);
                account.bals.push((asset_id, Bal { available: int(&p[0], "balance")?, reserved: int(&p[1], "balance")? }));
            }
            self.accounts.insert(acc_id, account);
            self.account_order.push(acc_id);
        }
        for (k, v) in obj(data.get("fees"), "fees")? {
            let id = self.strs.intern(&k);
            self.fees.insert(id, int(&v, "fees")?);
        }
        let Some(J::Arr(orders)) = data.get("orders") else { return Err(bad("orders")) };
        for raw in orders {
            let g = |k: &str| raw.get(k).ok_or_else(|| bad(k));
            let e = |k: &str, kind: u8| -> PyResult<u8> {
                let t = text(raw.get(k), k)?;
                ENUM_VALUES[kind as usize].iter().position(|v| *v == t).map(|i| i as u8).ok_or_else(|| bad(k))
            };
            let b = |k: &str| -> PyResult<bool> {
                match raw.get(k) {
                    Some(J::Bool(v)) => Ok(*v),
                    _ => Err(bad(k)),
                }
            };
            let o = Order {
                oid: self.strs.intern(&text(raw.get("order_id"), "order_id")?),
                acc: self.strs.intern(&text(raw.get("account_id"), "account_id")?),
                sym: self.strs.intern(&text(raw.get("symbol"), "symbol")?),
                coid: self.strs.intern(&text(raw.get("client_order_id"), "client_order_id")?),
                side: e("side", SIDE)?,
                otype: e("order_type", OTYPE)?,
                tif: e("time_in_force", TIF)?,
                post_only: b("post_only")?,
                stp: e("stp", STP)?,
                price: int(g("price_ticks")?, "price_ticks")?,
                remaining: int(g("remaining_lots")?, "remaining_lots")?,
                budget: b("budget")?,
                asset: self.strs.intern(&text(raw.get("reserved_asset"), "reserved_asset")?),
                reserved: int(g("reserved_atoms")?, "reserved_atoms")?,
                seq: int(g("seq")?, "seq")?,
                resting: false,
            };
            self.orders.insert(o.oid, o);
        }
        for (sym, sides) in obj(data.get("books"), "books")? {
            let sym_id = self.strs.intern(&sym);
            let ii = self.inst_of(sym_id)?;
            for (key, side) in [("bids", BUY), ("asks", 1u8)] {
                let Some(J::Arr(ids)) = sides.get(key) else { return Err(bad(key)) };
                for id in ids {
                    let oid = self.strs.intern(&text(Some(id), key)?);
                    let o = self.order_mut(oid)?;
                    o.resting = true;
                    let price = o.price;
                    self.books[ii].side(side).append(price, oid);
                }
            }
        }
        self.trade_seq = int(data.get("trade_seq").ok_or_else(|| bad("trade_seq"))?, "trade_seq")?;
        self.order_seq = int(data.get("order_seq").ok_or_else(|| bad("order_seq"))?, "order_seq")?;
        let Some(J::Arr(used)) = data.get("used_order_ids") else { return Err(bad("used_order_ids")) };
        for u in used {
            let id = self.strs.intern(&text(Some(u), "used_order_ids")?);
            self.used.insert(id);
        }
        let Some(J::Arr(recs)) = data.get("client_orders") else { return Err(bad("client_orders")) };
        for rec in recs {
            let J::Arr(parts) = rec else { return Err(bad("client_orders")) };
            if parts.len() != 4 {
                return Err(bad("client_orders"));
            }
            let acc = self.strs.intern(&text(Some(&parts[0]), "client_orders")?);
            let coid = self.strs.intern(&text(Some(&parts[1]), "client_orders")?);
            let oid = self.strs.intern(&text(Some(&parts[2]), "client_orders")?);
            let J::Arr(evs) = &parts[3] else { return Err(bad("client_orders")) };
            let evs = evs.iter().map(|e| self.ev_from_json(py, e)).collect::<PyResult<Vec<Ev>>>()?;
            let head = match evs.first() {
                Some(e) => e.m.clone(),
                None => Arc::new(Meta::new(RStr::own(""), RStr::own(""), 0)),
            };
            let i = self.client.start(acc, coid, oid, &head);
            for e in &evs {
                self.client.push(i, e, &head);
            }
        }
        Ok(())
    }

    fn stream_key(&self, e: &Ev) -> String {
        let s = |id: u32| self.strs.s(id);
        match &e.k {
            K::Trade { sym, .. } => format!("trades:{}", s(*sym)),
            K::CmdRejected { subject, .. } => format!("rejections:{}", s(*subject)),
            K::Accepted { oid, acc, sym, .. }
            | K::Rejected { oid, acc, sym, .. }
            | K::Rested { oid, acc, sym, .. }
            | K::Canceled { oid, acc, sym, .. }
            | K::Amended { oid, acc, sym, .. } => {
                for (id, prefix) in [(oid, "order"), (acc, "account"), (sym, "instrument")] {
                    if !s(*id).is_empty() {
                        return format!("{prefix}:{}", s(*id));
                    }
                }
                format!("misc:{}", EVENT_NAMES[e.cls()])
            }
            K::Opened(acc) | K::Deposited(acc, _, _) | K::Withdrawn(acc, _, _) | K::WithdrawRej { acc, .. } => {
                if s(*acc).is_empty() { format!("misc:{}", EVENT_NAMES[e.cls()]) } else { format!("account:{}", s(*acc)) }
            }
            K::Listed(l) => {
                if s(l.sym).is_empty() { "misc:InstrumentListed".into() } else { format!("instrument:{}", s(l.sym)) }
            }
            K::Halted(sym) | K::Resumed(sym) => {
                if s(*sym).is_empty() { format!("misc:{}", EVENT_NAMES[e.cls()]) } else { format!("instrument:{}", s(*sym)) }
            }
        }
    }
}

/// Whether `read_mpd` gives what `str()` + `dec::parse` give, on probes that cover every
/// branch (signs, zero, exponents, one to three 64-bit words, the 128-bit limit, specials).
/// False (the `str()` path is used) for `_pydecimal` or an unexpected layout.
fn decimal_layout_agrees(decimal: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = decimal.py();
    let Ok(tp) = decimal.downcast::<PyType>() else { return Ok(false) };
    let basic = unsafe { (*(tp.as_ptr() as *mut ffi::PyTypeObject)).tp_basicsize };
    if tp.getattr("__module__")?.extract::<String>()? != "decimal"
        || py.import_bound("decimal")?.getattr("__libmpdec_version__").is_err()
        || (basic as usize) < std::mem::size_of::<PyDecObject>()
        || cfg!(not(target_pointer_width = "64"))
    {
        return Ok(false);
    }
    let probes = [
        "0", "-0", "1", "-1", "100.00", "1.23", "-0.001", "1E+5", "1.00E+2", "1E-60", "-1E+60",
        "0E-7", "9999999999999999999", "10000000000000000000", "12345678901234567890.123",
        "99999999999999999999999999999999999999", "340282366920938463463374607431768211455",
        "340282366920938463463374607431768211456", "1234567890123456789012345678901234567890123",
        "NaN", "-NaN", "sNaN", "NaN123", "Infinity", "-Infinity",
    ];
    for text in probes {
        let obj = decimal.call1((text,))?;
        let via_str = dec::parse(obj.str()?.to_str()?);
        if unsafe { read_mpd(obj.as_ptr()) } != via_str {
            return Ok(false);
        }
    }
    Ok(true)
}

fn own(j: &J<'_>) -> J<'static> {
    match j {
        J::Null => J::Null,
        J::Bool(b) => J::Bool(*b),
        J::Int(n) => J::Int(*n),
        J::Str(s) => J::Str(std::borrow::Cow::Owned(s.to_string())),
        J::Arr(a) => J::Arr(a.iter().map(own).collect()),
        J::Obj(o) => J::Obj(o.iter().map(|(k, v)| (std::borrow::Cow::Owned(k.to_string()), own(v))).collect()),
    }
}

#[pymethods]
impl Kernel {
    /// `Kernel(event_types, outcome_cls, enums, command_types, decimal_cls, decode_error)`.
    #[new]
    fn new(
        py: Python<'_>,
        event_types: Vec<Bound<'_, PyAny>>,
        outcome_cls: Bound<'_, PyAny>,
        enums: Vec<Vec<Bound<'_, PyAny>>>,
        command_types: Vec<Bound<'_, PyAny>>,
        decimal_cls: Bound<'_, PyAny>,
        decode_error: Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        if event_types.len() != EVENT_NAMES.len() || command_types.len() != 10 || enums.len() != 6 {
            return Err(PyTypeError::new_err("Kernel: unexpected context"));
        }
        let mut events = Vec::new();
        let mut types = Vec::new();
        let mut sorted = Vec::new();
        let mut fields = Vec::new();
        for (i, cls) in event_types.iter().enumerate() {
            let name: String = cls.getattr("__name__")?.extract()?;
            if name != EVENT_NAMES[i] {
                return Err(PyTypeError::new_err(format!("event {i} is {name}, not {}", EVENT_NAMES[i])));
            }
            let f = event_fields(i);
            let names: Vec<&str> = f.iter().map(|x| x.0).collect();
            events.push(Builder::new(cls, &names)?);
            types.push(cls.downcast::<PyType>()?.clone().unbind());
            let mut keys: Vec<(&str, usize)> = names.iter().enumerate().map(|(j, n)| (*n, j)).collect();
            keys.push(("event_type", ET));
            keys.push(("schema_version", SV));
            keys.sort_unstable();
            sorted.push(keys.into_iter().map(|(_, j)| j).collect());
            fields.push(f);
        }
        let mut enum_objs = Vec::new();
        for (k, members) in enums.iter().enumerate() {
            let values: Vec<String> = members
                .iter()
                .map(|m| m.getattr("value")?.extract::<String>())
                .collect::<PyResult<_>>()?;
            if values != ENUM_VALUES[k] {
                return Err(PyTypeError::new_err(format!(
                    "{} values {values:?} differ from the kernel's; rebuild the kernel",
                    ENUM_NAMES[k]
                )));
            }
            enum_objs.push(members.iter().map(|m| m.clone().unbind()).collect());
        }
        let mut cmd_layouts = Vec::new();
        for (kind, cls) in command_types.iter().enumerate() {
            let names: Vec<&str> = META_FIELDS.iter().chain(CMD_FIELDS[kind].iter()).copied().collect();
            cmd_layouts.push(Builder::new(cls, &names)?);
        }
        let decimal_raw = decimal_layout_agrees(&decimal_cls)?;
        let ctx = Ctx {
            events,
            event_types: types,
            outcome: Builder::new(&outcome_cls, &["events", "duplicate"])?,
            enums: enum_objs,
            commands: command_types
                .iter()
                .map(|c| Ok(c.downcast::<PyType>()?.clone().unbind()))
                .collect::<PyResult<_>>()?,
            cmd_layouts,
            decimal_raw,
            decimal: decimal_cls.unbind(),
            decode_error: decode_error.unbind(),
            sorted,
            fields,
        };
        let _ = py;
        Ok(Kernel {
            ctx,
            strs: Interner::default(),
            insts: Vec::new(),
            inst_idx: FxMap::default(),
            books: Vec::new(),
            last_price: FxMap::default(),
            asset_dec: FxMap::default(),
            accounts: FxMap::default(),
            account_order: Vec::new(),
            fees: FxMap::default(),
            orders: Orders::default(),
            trade_seq: 0,
            order_seq: 0,
            used: IdSet::default(),
            client: Records::default(),
            ints: IntCache::new(),
            recording: None,
            pending: Vec::new(),
        })
    }

    /// Decide `command`; returns `Outcome` (every event already applied).
    fn handle(&mut self, py: Python<'_>, command: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        Ok(self.handle_one(py, command, false)?.0)
    }

    /// `handle` plus the canonical JSON payload of each outcome event.
    fn handle_encoded(&mut self, py: Python<'_>, command: &Bound<'_, PyAny>) -> PyResult<(PyObject, PyObject)> {
        let (outcome, payloads) = self.handle_one(py, command, true)?;
        Ok((outcome, payloads.unwrap_or_else(|| py.None())))
    }

    /// `[handle(c) for c in commands]` in one call. If a command raises, the exception
    /// propagates and the commands before it stay decided and applied, as with the loop.
    fn handle_many(&mut self, py: Python<'_>, commands: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.handle_seq(py, commands, false)
    }

    /// `[handle_encoded(c) for c in commands]` in one call (same exceptions as `handle_many`).
    fn handle_encoded_many(&mut self, py: Python<'_>, commands: &Bound<'_, PyAny>) -> PyResult<PyObject> {
        self.handle_seq(py, commands, true)
    }

    /// `Exchange.apply(event)` for a `domain.events` object.
    fn apply(&mut self, py: Python<'_>, event: &Bound<'_, PyAny>) -> PyResult<()> {
        let e = self.ev_from_py(py, event)?;
        self.apply_ev(&e)
    }

    /// Parse one canonical payload (JSON of `to_dict(event)`), apply it; returns the
    /// event's stream key (`commands.core.stream_key`).
    fn apply_payload(&mut self, py: Python<'_>, payload: &[u8]) -> PyResult<String> {
        let text = std::str::from_utf8(payload).map_err(|e| self.decode_err(py, e.to_string()))?;
        let j = Parser::new(text).parse_document().map_err(|e| self.decode_err(py, e))?;
        let e = self.ev_from_json(py, &j)?;
        self.apply_ev(&e)?;
        Ok(self.stream_key(&e))
    }

    /// Apply many payloads; returns how many were applied.
    fn apply_payloads(&mut self, py: Python<'_>, payloads: Vec<Vec<u8>>) -> PyResult<usize> {
        for p in &payloads {
            self.apply_payload(py, p)?;
        }
        Ok(payloads.len())
    }

    /// The canonical JSON (sorted keys, no spaces, ASCII) of the snapshot.
    fn snapshot_json(&self) -> String {
        Kernel::snapshot_text(self)
    }

    /// `snapshot_json` without the idempotency records and used order ids.
    fn views_json(&self) -> String {
        Kernel::snapshot_text_of(self, false)
    }

    /// `views_json` without books and open orders (empty): accounts, instruments, prices,
    /// fees and asset decimals, at a cost that does not grow with the book.
    fn small_views_json(&self) -> String {
        Kernel::snapshot_text_with(self, false, false)
    }

    /// Whether `Decimal` arguments are read from their C layout (else through `str()`).
    fn decimal_fast_path(&self) -> bool {
        self.ctx.decimal_raw
    }

    fn state_hash(&self) -> String {
        let digest = Sha256::digest(Kernel::snapshot_text(self).as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Load a snapshot (JSON text of `Exchange.snapshot()`) into this empty kernel.
    fn load_snapshot_json(&mut self, py: Python<'_>, text: &str) -> PyResult<()> {
        if !self.accounts.is_empty() || !self.insts.is_empty() || !self.used.is_empty() {
            return Err(PyValueError::new_err("load a snapshot into a new kernel only"));
        }
        let j = Parser::new(text).parse_document().map_err(PyValueError::new_err)?;
        self.load_snapshot(py, &j)
    }

    fn balance(&self, account: &str, asset: &str) -> (i128, i128) {
        let (Some(a), Some(s)) = (self.strs.get(account), self.strs.get(asset)) else { return (0, 0) };
        self.accounts.get(&a).and_then(|acc| acc.get(s)).map_or((0, 0), |b| (b.available, b.reserved))
    }

    fn fee_balance(&self, asset: &str) -> i128 {
        self.strs.get(asset).and_then(|a| self.fees.get(&a).copied()).unwrap_or(0)
    }

    fn reference_price(&self, symbol: &str) -> PyResult<i128> {
        let sym = self.strs.get(symbol).ok_or_else(|| PyKeyError::new_err(symbol.to_string()))?;
        if let Some(p) = self.last_price.get(&sym) {
            return Ok(*p);
        }
        let ii = self.inst_of(sym)?;
        Ok(self.insts[ii].ref_ticks)
    }

    fn last_price(&self, symbol: &str) -> Option<i128> {
        self.strs.get(symbol).and_then(|s| self.last_price.get(&s).copied())
    }

    fn has_instrument(&self, symbol: &str) -> bool {
        self.strs.get(symbol).is_some_and(|s| self.inst_idx.contains_key(&s))
    }

    fn has_account(&self, account: &str) -> bool {
        self.strs.get(account).is_some_and(|a| self.accounts.contains_key(&a))
    }

    fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// One open order as the tuple of `Order.__init__` arguments plus `resting`, or None.
    fn order(&self, py: Python<'_>, order_id: &str) -> Option<PyObject> {
        let oid = self.strs.get(order_id)?;
        let o = self.orders.get(&oid)?;
        Some(self.order_tuple(py, o))
    }

    /// The open orders of one account (in arrival order), as `order()` tuples.
    fn orders_of(&self, py: Python<'_>, account: &str) -> Vec<PyObject> {
        let Some(acc) = self.strs.get(account) else { return Vec::new() };
        let mut mine: Vec<&Order> = self.orders.values().filter(|o| o.acc == acc).collect();
        mine.sort_unstable_by_key(|o| o.seq);
        mine.into_iter().map(|o| self.order_tuple(py, o)).collect()
    }

    /// Every open order (in arrival order), as `order()` tuples.
    fn orders(&self, py: Python<'_>) -> Vec<PyObject> {
        let mut all: Vec<&Order> = self.orders.values().collect();
        all.sort_unstable_by_key(|o| o.seq);
        all.into_iter().map(|o| self.order_tuple(py, o)).collect()
    }
}

impl Kernel {
    fn order_tuple(&self, py: Python<'_>, o: &Order) -> PyObject {
        let s = |id: u32| unsafe { PyObject::from_owned_ptr(py, self.strs.py(py, id)) };
        let e = |k: u8, i: u8| self.ctx.enums[k as usize][i as usize].clone_ref(py);
        let items: Vec<PyObject> = vec![
            s(o.oid), s(o.acc), s(o.sym), s(o.coid), e(SIDE, o.side), e(OTYPE, o.otype),
            e(TIF, o.tif), o.post_only.into_py(py), e(STP, o.stp), o.price.into_py(py),
            o.remaining.into_py(py), o.budget.into_py(py), s(o.asset), o.reserved.into_py(py),
            o.seq.into_py(py), o.resting.into_py(py),
        ];
        PyTuple::new_bound(py, items).into_any().unbind()
    }
}

#[pymodule]
fn _kernel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Kernel>()?;
    m.add("KERNEL_ABI", 1)?;
    Ok(())
}
