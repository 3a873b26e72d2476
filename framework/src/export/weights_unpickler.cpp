#include "export/weights_unpickler.h"

#include <cstdint>
#include <cstring>
#include <map>
#include <utility>

#include <ATen/ops/empty.h>

#include "lmrun/error.h"
#include "util/fs.h"

namespace lmrun::host {
namespace {

// A value on the pickle machine's stack: a value, a MARK, or a global not yet called.
struct Item {
  enum Kind { kValue, kMark, kGlobal } kind = kValue;
  c10::IValue value;
  std::string global;  // "module name"
};

at::ScalarType storage_dtype(const std::string& global) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"torch FloatStorage", at::kFloat},  {"torch DoubleStorage", at::kDouble},
      {"torch HalfStorage", at::kHalf},    {"torch BFloat16Storage", at::kBFloat16},
      {"torch LongStorage", at::kLong},    {"torch IntStorage", at::kInt},
      {"torch ShortStorage", at::kShort},  {"torch CharStorage", at::kChar},
      {"torch ByteStorage", at::kByte},    {"torch BoolStorage", at::kBool},
      {"torch UntypedStorage", at::kByte},
  };
  const auto it = kTypes.find(global);
  if (it == kTypes.end()) throw Error("a storage of unknown type " + global);
  return it->second;
}

class Machine {
 public:
  Machine(const std::string& pickle, const StorageReader& storage)
      : in_(pickle), storage_(storage) {}

  Unpickled run() {
    while (true) {
      const auto op = static_cast<unsigned char>(byte());
      if (op == '.') break;  // STOP
      step(op);
    }
    if (stack_.size() != 1 || stack_.back().kind != Item::kValue)
      throw Error("the pickle does not end with one value");
    return {stack_.back().value, skipped_};
  }

 private:
  char byte() {
    if (at_ >= in_.size()) throw Error("the pickle is truncated");
    return in_[at_++];
  }
  std::string bytes(std::uint64_t n) {
    if (n > in_.size() - at_) throw Error("the pickle is truncated");
    std::string out = in_.substr(at_, n);
    at_ += n;
    return out;
  }
  std::uint64_t little(int n) {  // an unsigned little-endian integer of n bytes
    const std::string b = bytes(static_cast<std::uint64_t>(n));
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[i]);
    return v;
  }
  std::string line() {
    const std::size_t end = in_.find('\n', at_);
    if (end == std::string::npos) throw Error("the pickle is truncated");
    std::string out = in_.substr(at_, end - at_);
    at_ = end + 1;
    return out;
  }

  void push(c10::IValue v) { stack_.push_back({Item::kValue, std::move(v), {}}); }
  Item pop_item() {
    if (stack_.empty()) throw Error("the pickle pops an empty stack");
    Item item = std::move(stack_.back());
    stack_.pop_back();
    return item;
  }
  // A global used as a value (a storage's type in a persistent id) stands for its name.
  static c10::IValue value_of(Item item) {
    return item.kind == Item::kGlobal ? c10::IValue(item.global) : std::move(item.value);
  }
  c10::IValue pop() {
    Item item = pop_item();
    if (item.kind == Item::kMark) throw Error("the pickle uses a mark as a value");
    return value_of(std::move(item));
  }
  // The values above the topmost MARK, which is removed.
  std::vector<c10::IValue> pop_mark() {
    std::vector<c10::IValue> out;
    while (true) {
      Item item = pop_item();
      if (item.kind == Item::kMark) break;
      out.push_back(value_of(std::move(item)));
    }
    return {out.rbegin(), out.rend()};
  }
  c10::IValue& top() {
    if (stack_.empty() || stack_.back().kind != Item::kValue)
      throw Error("the pickle has no value to add to");
    return stack_.back().value;
  }
  static c10::IValue tuple(std::vector<c10::IValue> items) {
    return c10::ivalue::Tuple::create(std::move(items));
  }
  static c10::impl::GenericDict new_dict() {
    return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get());
  }
  void set_items(c10::IValue& target, const std::vector<c10::IValue>& items) {
    if (!target.isGenericDict()) throw Error("the pickle sets items on something not a dict");
    if (items.size() % 2 != 0) throw Error("the pickle sets a key without a value");
    c10::impl::GenericDict dict = target.toGenericDict();
    for (std::size_t i = 0; i < items.size(); i += 2) dict.insert_or_assign(items[i], items[i + 1]);
  }
  void append(c10::IValue& target, const std::vector<c10::IValue>& items) {
    if (!target.isList()) throw Error("the pickle appends to something not a list");
    c10::impl::GenericList list = target.toList();
    for (const c10::IValue& item : items) list.push_back(item);
  }
  static std::vector<std::int64_t> ints_of(const c10::IValue& v) {
    std::vector<std::int64_t> out;
    if (!v.isTuple()) throw Error("a tensor's size or stride is not a tuple");
    for (const c10::IValue& e : v.toTupleRef().elements()) out.push_back(e.toInt());
    return out;
  }

  // A flat tensor over storage `key` (cached: two tensors may share one storage).
  c10::IValue load_storage(const c10::IValue& pid) {
    if (!pid.isTuple()) throw Error("a persistent id that is not a storage tuple");
    // A copy: indexing the tuple's small inline buffer trips GCC 12's -Warray-bounds.
    const std::vector<c10::IValue> e = pid.toTupleRef().elements().vec();
    if (e.size() < 5 || !e[0].isString() || e[0].toStringRef() != "storage" || !e[1].isString())
      throw Error("a persistent id that is not ('storage', type, key, location, size)");
    const std::string key = e[2].isString() ? e[2].toStringRef() : std::to_string(e[2].toInt());
    const auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const at::ScalarType dtype = storage_dtype(e[1].toStringRef());
    const std::int64_t numel = e[4].toInt();
    const std::string data = storage_(key);
    const std::size_t need = static_cast<std::size_t>(numel) * c10::elementSize(dtype);
    if (data.size() < need) {
      throw Error("storage " + key + " holds " + std::to_string(data.size()) + " bytes, " +
                  std::to_string(need) + " expected (truncated?)");
    }
    at::Tensor flat = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (need > 0) std::memcpy(flat.data_ptr(), data.data(), need);
    return storages_[key] = flat;
  }

  c10::IValue call(const std::string& global, const c10::IValue& args) {
    const auto& a = args.toTupleRef().elements();
    if (global == "collections OrderedDict") return new_dict();
    if (global == "torch._utils _rebuild_tensor_v2" || global == "torch._utils _rebuild_tensor") {
      if (a.size() < 4 || !a[0].isTensor()) throw Error("a malformed _rebuild_tensor_v2 call");
      const at::Tensor storage = a[0].toTensor();
      const std::vector<std::int64_t> size = ints_of(a[2]), stride = ints_of(a[3]);
      std::int64_t last = a[1].toInt();  // the furthest element the view reads
      for (std::size_t i = 0; i < size.size(); ++i)
        if (size[i] > 0) last += (size[i] - 1) * stride[i];
      if (last >= storage.numel() && storage.numel() > 0)
        throw Error("a tensor reaches past the end of its storage");
      return storage.as_strided(size, stride, a[1].toInt());
    }
    if (global == "torch._utils _rebuild_parameter") {
      if (a.empty() || !a[0].isTensor()) throw Error("a malformed _rebuild_parameter call");
      return a[0];
    }
    if (global == "torch Size") return a.empty() ? tuple({}) : a[0];
    skipped_.push_back(global);
    return c10::IValue();
  }

  void step(unsigned char op) {
    switch (op) {
      case 0x80:
        byte();
        break;  // PROTO
      case 0x95:
        little(8);
        break;  // FRAME
      case '(':
        stack_.push_back({Item::kMark, {}, {}});
        break;
      case '0':
        pop_item();
        break;  // POP
      case '1':
        pop_mark();
        break;  // POP_MARK
      case '2':
        stack_.push_back(stack_.at(stack_.size() - 1));
        break;  // DUP
      case '}':
        push(new_dict());
        break;  // EMPTY_DICT
      case ']':
        push(c10::impl::GenericList(c10::AnyType::get()));
        break;  // EMPTY_LIST
      case 0x8f:
        push(c10::impl::GenericList(c10::AnyType::get()));
        break;  // EMPTY_SET
      case ')':
        push(tuple({}));
        break;  // EMPTY_TUPLE
      case 't':
        push(tuple(pop_mark()));
        break;
      case 0x85: {
        c10::IValue x = pop();
        push(tuple({x}));
        break;
      }
      case 0x86: {
        c10::IValue y = pop(), x = pop();
        push(tuple({x, y}));
        break;
      }
      case 0x87: {
        c10::IValue z = pop(), y = pop(), x = pop();
        push(tuple({x, y, z}));
        break;
      }
      case 'l': {  // LIST
        c10::impl::GenericList list(c10::AnyType::get());
        for (c10::IValue& v : pop_mark()) list.push_back(std::move(v));
        push(list);
        break;
      }
      case 'd': {  // DICT
        c10::IValue dict = new_dict();
        set_items(dict, pop_mark());
        push(dict);
        break;
      }
      case 'a': {
        c10::IValue v = pop();
        append(top(), {v});
        break;
      }  // APPEND
      case 'e': {
        auto items = pop_mark();
        append(top(), items);
        break;
      }  // APPENDS
      case 0x90: {
        auto items = pop_mark();
        append(top(), items);
        break;
      }  // ADDITEMS
      case 's': {
        c10::IValue v = pop(), k = pop();
        set_items(top(), {k, v});
        break;
      }  // SETITEM
      case 'u': {
        auto items = pop_mark();
        set_items(top(), items);
        break;
      }  // SETITEMS
      case 'J':
        push(static_cast<std::int64_t>(static_cast<std::int32_t>(little(4))));
        break;
      case 'K':
        push(static_cast<std::int64_t>(little(1)));
        break;
      case 'M':
        push(static_cast<std::int64_t>(little(2)));
        break;
      case 0x8a:
      case 0x8b: {  // LONG1, LONG4: little-endian two's complement
        const std::uint64_t n = little(op == 0x8a ? 1 : 4);
        if (n > 8) throw Error("an integer wider than 64 bits");
        std::uint64_t v = n == 0 ? 0 : little(static_cast<int>(n));
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~std::uint64_t{0} << (8 * n);
        push(static_cast<std::int64_t>(v));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian double
        const std::string b = bytes(8);
        std::uint64_t v = 0;
        for (char c : b) v = (v << 8) | static_cast<unsigned char>(c);
        double d;
        std::memcpy(&d, &v, 8);
        push(d);
        break;
      }
      case 'N':
        push(c10::IValue());
        break;
      case 0x88:
        push(true);
        break;
      case 0x89:
        push(false);
        break;
      case 'X':
        push(bytes(little(4)));
        break;  // BINUNICODE
      case 0x8c:
        push(bytes(little(1)));
        break;  // SHORT_BINUNICODE
      case 0x8d:
        push(bytes(little(8)));
        break;  // BINUNICODE8
      case 'T':
        push(bytes(little(4)));
        break;  // BINSTRING
      case 'U':
        push(bytes(little(1)));
        break;  // SHORT_BINSTRING
      case 'B':
        push(bytes(little(4)));
        break;  // BINBYTES
      case 'C':
        push(bytes(little(1)));
        break;  // SHORT_BINBYTES
      case 0x8e:
        push(bytes(little(8)));
        break;  // BINBYTES8
      case 'q':
        memo_[little(1)] = stack_.at(stack_.size() - 1);
        break;  // BINPUT
      case 'r':
        memo_[little(4)] = stack_.at(stack_.size() - 1);
        break;  // LONG_BINPUT
      case 0x94:
        memo_[memo_.size()] = stack_.at(stack_.size() - 1);
        break;  // MEMOIZE
      case 'h':
      case 'j': {  // BINGET, LONG_BINGET
        const auto it = memo_.find(little(op == 'h' ? 1 : 4));
        if (it == memo_.end()) throw Error("the pickle reads a memo entry it never wrote");
        stack_.push_back(it->second);
        break;
      }
      case 'c': {  // GLOBAL
        std::string module = line();
        stack_.push_back({Item::kGlobal, {}, module + " " + line()});
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        const c10::IValue name = pop(), module = pop();
        if (!name.isString() || !module.isString()) throw Error("a malformed STACK_GLOBAL");
        stack_.push_back({Item::kGlobal, {}, module.toStringRef() + " " + name.toStringRef()});
        break;
      }
      case 'R': {  // REDUCE
        const c10::IValue args = pop();
        const Item callable = pop_item();
        if (callable.kind != Item::kGlobal || !args.isTuple())
          throw Error("the pickle calls something that is not a known global");
        push(call(callable.global, args));
        break;
      }
      case 0x81: {  // NEWOBJ: an object of a class lmrun does not build
        pop();
        const Item cls = pop_item();
        skipped_.push_back(cls.kind == Item::kGlobal ? cls.global : "an object");
        push(c10::IValue());
        break;
      }
      case 'b':
        pop();
        break;     // BUILD: an object's state (OrderedDict metadata)
      case 'Q': {  // BINPERSID
        const c10::IValue pid = pop();
        push(load_storage(pid));
        break;
      }
      default:
        throw Error("pickle opcode " + std::to_string(op) + " is not one a weights file uses");
    }
  }

  const std::string& in_;
  std::size_t at_ = 0;
  const StorageReader& storage_;
  std::vector<Item> stack_;
  std::map<std::uint64_t, Item> memo_;
  std::map<std::string, c10::IValue> storages_;
  std::vector<std::string> skipped_;
};

}  // namespace

Unpickled unpickle_weights(const std::string& pickle, const StorageReader& storage) {
  try {
    return Machine(pickle, storage).run();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // a c10 type check on a malformed value
    throw Error(std::string("the pickle is malformed: ") + first_line(e.what()));
  }
}

}  // namespace lmrun::host
