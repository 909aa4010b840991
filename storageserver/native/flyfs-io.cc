// flyfs_io: an io_uring ring driven from Node, with raw syscalls against <linux/io_uring.h>
// (no liburing, so no system package). Submission is batched: prep* methods only fill SQEs and
// submit() hands them all to the kernel in one io_uring_enter. Completion needs no extra thread:
// the ring signals an eventfd (IORING_REGISTER_EVENTFD) that a uv_poll on Node's own loop
// watches; the poll callback reaps every CQE and reports them to JS in batches of
// (slot, result) pairs. Slots are numbered by JS (0 .. entries-1); each keeps its Buffer (and
// path) referenced until its CQE arrives, so the kernel never writes into collected memory.
// Results are raw: >= 0 on success, -errno on failure; JS turns them into errno errors.
#include <napi.h>
#include <uv.h>

#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <memory>
#include <string>
#include <vector>

namespace {

int SysSetup(unsigned entries, io_uring_params* p) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, p));
}

int SysEnter(int fd, unsigned toSubmit) {
  return static_cast<int>(syscall(__NR_io_uring_enter, fd, toSubmit, 0, 0, nullptr, 0));
}

int SysRegister(int fd, unsigned opcode, void* arg, unsigned nrArgs) {
  return static_cast<int>(syscall(__NR_io_uring_register, fd, opcode, arg, nrArgs));
}

// An Error carrying the negative errno and the syscall; JS adds the code name (util's map).
Napi::Error ErrnoError(Napi::Env env, int err, const char* sysName) {
  Napi::Error e = Napi::Error::New(env, std::string(sysName) + " failed: " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("syscall", Napi::String::New(env, sysName));
  return e;
}

// The ops the engine needs; a kernel without any of them (before 5.6) is treated as no io_uring.
const unsigned kRequiredOps[] = {IORING_OP_READ, IORING_OP_WRITE, IORING_OP_FSYNC, IORING_OP_OPENAT};

struct Slot {
  Napi::ObjectReference buffer;
  std::string path;
  bool busy = false;
};

class Ring : public Napi::ObjectWrap<Ring> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Ring",
                       {
                           InstanceMethod<&Ring::PrepRead>("prepRead"),
                           InstanceMethod<&Ring::PrepWrite>("prepWrite"),
                           InstanceMethod<&Ring::PrepFsync>("prepFsync"),
                           InstanceMethod<&Ring::PrepOpen>("prepOpen"),
                           InstanceMethod<&Ring::Submit>("submit"),
                           InstanceMethod<&Ring::Close>("close"),
                           InstanceAccessor<&Ring::Entries>("entries"),
                           InstanceAccessor<&Ring::Inflight>("inflight"),
                       });
  }

  // new Ring(entries, completions: Int32Array, onComplete: (count) => void)
  explicit Ring(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Ring>(info), env_(info.Env()) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsFunction()) {
      throw Napi::TypeError::New(env, "Ring(entries, completions: Int32Array, onComplete)");
    }
    unsigned entries = info[0].As<Napi::Number>().Uint32Value();
    Napi::TypedArray arr = info[1].As<Napi::TypedArray>();
    if (arr.TypedArrayType() != napi_int32_array || arr.ElementLength() < 2) {
      throw Napi::TypeError::New(env, "completions must be an Int32Array of at least 2 elements");
    }
    Napi::Int32Array out = arr.As<Napi::Int32Array>();
    completions_ = Napi::Persistent(out);
    out_ = out.Data();
    outPairsMax_ = out.ElementLength() / 2;
    onComplete_ = Napi::Persistent(info[2].As<Napi::Function>());
    asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "flyfs_io");

    io_uring_params p;
    std::memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CLAMP;
    ringFd_ = SysSetup(entries, &p);
    if (ringFd_ < 0) throw ErrnoError(env, errno, "io_uring_setup");
    try {
      MapRings(env, p);
      CheckOps(env);
      SetUpEventfd(env);
    } catch (...) {
      Destroy();
      throw;
    }
    slots_.resize(sqEntries_);
  }

  ~Ring() override { Destroy(); }

 private:
  void MapRings(Napi::Env env, const io_uring_params& p) {
    sqEntries_ = p.sq_entries;
    sqRingBytes_ = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cqRingBytes_ = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single && cqRingBytes_ > sqRingBytes_) sqRingBytes_ = cqRingBytes_;
    sqRing_ = mmap(nullptr, sqRingBytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ringFd_,
                   IORING_OFF_SQ_RING);
    if (sqRing_ == MAP_FAILED) {
      sqRing_ = nullptr;
      throw ErrnoError(env, errno, "mmap");
    }
    if (single) {
      cqRing_ = sqRing_;
    } else {
      cqRing_ = mmap(nullptr, cqRingBytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ringFd_,
                     IORING_OFF_CQ_RING);
      if (cqRing_ == MAP_FAILED) {
        cqRing_ = nullptr;
        throw ErrnoError(env, errno, "mmap");
      }
    }
    sqesBytes_ = p.sq_entries * sizeof(io_uring_sqe);
    sqes_ = static_cast<io_uring_sqe*>(mmap(nullptr, sqesBytes_, PROT_READ | PROT_WRITE,
                                            MAP_SHARED | MAP_POPULATE, ringFd_, IORING_OFF_SQES));
    if (sqes_ == MAP_FAILED) {
      sqes_ = nullptr;
      throw ErrnoError(env, errno, "mmap");
    }
    char* sq = static_cast<char*>(sqRing_);
    sqHead_ = reinterpret_cast<unsigned*>(sq + p.sq_off.head);
    sqTail_ = reinterpret_cast<unsigned*>(sq + p.sq_off.tail);
    sqMask_ = *reinterpret_cast<unsigned*>(sq + p.sq_off.ring_mask);
    unsigned* array = reinterpret_cast<unsigned*>(sq + p.sq_off.array);
    // SQE i always sits at index i: the indirection array is filled once.
    for (unsigned i = 0; i < p.sq_entries; i++) array[i] = i;
    char* cq = static_cast<char*>(cqRing_);
    cqHead_ = reinterpret_cast<unsigned*>(cq + p.cq_off.head);
    cqTail_ = reinterpret_cast<unsigned*>(cq + p.cq_off.tail);
    cqMask_ = *reinterpret_cast<unsigned*>(cq + p.cq_off.ring_mask);
    cqes_ = reinterpret_cast<io_uring_cqe*>(cq + p.cq_off.cqes);
    // At most sq_entries requests are in flight (JS holds the rest) and the CQ has at least as
    // many entries, so the CQ can never overflow.
    if (p.cq_entries < p.sq_entries) throw Napi::Error::New(env, "io_uring: CQ smaller than SQ");
  }

  void CheckOps(Napi::Env env) {
    const unsigned opsMax = 256;
    size_t bytes = sizeof(io_uring_probe) + opsMax * sizeof(io_uring_probe_op);
    std::unique_ptr<char[]> mem(new char[bytes]());
    io_uring_probe* probe = reinterpret_cast<io_uring_probe*>(mem.get());
    if (SysRegister(ringFd_, IORING_REGISTER_PROBE, probe, opsMax) < 0) {
      throw ErrnoError(env, errno, "io_uring_register");
    }
    for (unsigned op : kRequiredOps) {
      if (op > probe->last_op || (probe->ops[op].flags & IO_URING_OP_SUPPORTED) == 0) {
        throw ErrnoError(env, EOPNOTSUPP, "io_uring_register");
      }
    }
  }

  void SetUpEventfd(Napi::Env env) {
    eventFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (eventFd_ < 0) throw ErrnoError(env, errno, "eventfd");
    if (SysRegister(ringFd_, IORING_REGISTER_EVENTFD, &eventFd_, 1) < 0) {
      throw ErrnoError(env, errno, "io_uring_register");
    }
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      throw Napi::Error::New(env, "io_uring: no uv loop");
    }
    poll_ = new uv_poll_t;
    if (uv_poll_init(loop, poll_, eventFd_) != 0) {
      delete poll_;
      poll_ = nullptr;
      throw Napi::Error::New(env, "io_uring: uv_poll_init failed");
    }
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, OnPoll);
    // An idle ring must not keep the process alive; it is ref'd while requests are in flight.
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  }

  void Destroy() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_),
               [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (sqes_ != nullptr) munmap(sqes_, sqesBytes_);
    if (cqRing_ != nullptr && cqRing_ != sqRing_) munmap(cqRing_, cqRingBytes_);
    if (sqRing_ != nullptr) munmap(sqRing_, sqRingBytes_);
    sqes_ = nullptr;
    cqRing_ = nullptr;
    sqRing_ = nullptr;
    if (ringFd_ >= 0) close(ringFd_);
    if (eventFd_ >= 0) close(eventFd_);
    ringFd_ = -1;
    eventFd_ = -1;
  }

  void AssertOpen(Napi::Env env) {
    if (ringFd_ < 0) throw Napi::Error::New(env, "io_uring: ring is closed");
  }

  // Takes a free slot and the next SQE; both are programmer errors when unavailable.
  io_uring_sqe* Claim(Napi::Env env, uint32_t slot) {
    AssertOpen(env);
    if (slot >= slots_.size() || slots_[slot].busy) {
      throw Napi::RangeError::New(env, "io_uring: slot out of range or busy");
    }
    unsigned tail = *sqTail_;
    unsigned head = __atomic_load_n(sqHead_, __ATOMIC_ACQUIRE);
    if (tail - head >= sqEntries_) throw Napi::Error::New(env, "io_uring: submission queue full");
    io_uring_sqe* sqe = &sqes_[tail & sqMask_];
    std::memset(sqe, 0, sizeof *sqe);
    sqe->user_data = slot;
    return sqe;
  }

  void Publish(uint32_t slot) {
    __atomic_store_n(sqTail_, *sqTail_ + 1, __ATOMIC_RELEASE);
    slots_[slot].busy = true;
    toSubmit_++;
    inflight_++;
    // While requests are in flight the ring keeps the loop alive and its JS object from GC.
    // A flag, not the count's edge: a completion callback may publish after the count hit 0.
    if (!held_) {
      uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
      Ref();
      held_ = true;
    }
  }

  static uint64_t Position(Napi::Env env, const Napi::Value& v) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
      throw Napi::RangeError::New(env, "io_uring: position must be a safe non-negative integer");
    }
    return static_cast<uint64_t>(d);
  }

  // prepRead/prepWrite(slot, fd, buf, offset, length, position)
  void PrepRw(const Napi::CallbackInfo& info, uint8_t opcode) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[2].IsTypedArray()) throw Napi::TypeError::New(env, "bad arguments");
    uint32_t slot = info[0].As<Napi::Number>().Uint32Value();
    int32_t fd = info[1].As<Napi::Number>().Int32Value();
    Napi::TypedArray buf = info[2].As<Napi::TypedArray>();
    uint32_t offset = info[3].As<Napi::Number>().Uint32Value();
    uint32_t length = info[4].As<Napi::Number>().Uint32Value();
    uint64_t position = Position(env, info[5]);
    size_t bytes = buf.ByteLength();
    if (offset > bytes || length > bytes - offset) throw Napi::RangeError::New(env, "io_uring: range outside buffer");
    uint8_t* data = static_cast<uint8_t*>(buf.ArrayBuffer().Data()) + buf.ByteOffset();
    io_uring_sqe* sqe = Claim(env, slot);
    sqe->opcode = opcode;
    sqe->fd = fd;
    sqe->addr = reinterpret_cast<uint64_t>(data + offset);
    sqe->len = length;
    sqe->off = position;
    slots_[slot].buffer = Napi::Persistent(buf.As<Napi::Object>());
    Publish(slot);
  }

  void PrepRead(const Napi::CallbackInfo& info) { PrepRw(info, IORING_OP_READ); }
  void PrepWrite(const Napi::CallbackInfo& info) { PrepRw(info, IORING_OP_WRITE); }

  // prepFsync(slot, fd, datasync)
  void PrepFsync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3) throw Napi::TypeError::New(env, "bad arguments");
    uint32_t slot = info[0].As<Napi::Number>().Uint32Value();
    int32_t fd = info[1].As<Napi::Number>().Int32Value();
    bool datasync = info[2].ToBoolean().Value();
    io_uring_sqe* sqe = Claim(env, slot);
    sqe->opcode = IORING_OP_FSYNC;
    sqe->fd = fd;
    sqe->fsync_flags = datasync ? IORING_FSYNC_DATASYNC : 0;
    Publish(slot);
  }

  // prepOpen(slot, path, flags, mode): the result is the new fd.
  void PrepOpen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[1].IsString()) throw Napi::TypeError::New(env, "bad arguments");
    uint32_t slot = info[0].As<Napi::Number>().Uint32Value();
    std::string path = info[1].As<Napi::String>().Utf8Value();
    if (path.find('\0') != std::string::npos) throw Napi::TypeError::New(env, "io_uring: path contains NUL");
    int32_t flags = info[2].As<Napi::Number>().Int32Value();
    uint32_t mode = info[3].As<Napi::Number>().Uint32Value();
    io_uring_sqe* sqe = Claim(env, slot);
    slots_[slot].path = std::move(path);
    sqe->opcode = IORING_OP_OPENAT;
    sqe->fd = AT_FDCWD;
    sqe->addr = reinterpret_cast<uint64_t>(slots_[slot].path.c_str());
    sqe->len = mode;
    sqe->open_flags = static_cast<uint32_t>(flags | O_CLOEXEC);
    Publish(slot);
  }

  // Hands every prepared SQE to the kernel. Returns how many went, or -EAGAIN/-EBUSY when the
  // kernel is short of resources for now (the SQEs stay queued; JS retries).
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    AssertOpen(env);
    unsigned total = 0;
    while (toSubmit_ > 0) {
      int r = SysEnter(ringFd_, toSubmit_);
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EBUSY) return Napi::Number::New(env, -err);
        throw ErrnoError(env, err, "io_uring_enter");
      }
      if (r == 0) break;
      toSubmit_ -= static_cast<unsigned>(r);
      total += static_cast<unsigned>(r);
    }
    return Napi::Number::New(env, total);
  }

  void Close(const Napi::CallbackInfo& info) {
    if (inflight_ > 0) throw Napi::Error::New(info.Env(), "io_uring: close with requests in flight");
    Destroy();
  }

  Napi::Value Entries(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), sqEntries_); }
  Napi::Value Inflight(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), inflight_); }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    Ring* ring = static_cast<Ring*>(handle->data);
    if (status < 0 || ring == nullptr) return;
    uint64_t count;
    // Drain the counter before reaping: a CQE posted after this read signals again.
    while (read(ring->eventFd_, &count, sizeof count) > 0) {
    }
    ring->Reap();
  }

  void Reap() {
    Napi::HandleScope scope(env_);
    while (ringFd_ >= 0) {
      unsigned head = *cqHead_;
      unsigned tail = __atomic_load_n(cqTail_, __ATOMIC_ACQUIRE);
      if (head == tail) break;
      size_t n = 0;
      while (head != tail && n < outPairsMax_) {
        const io_uring_cqe& cqe = cqes_[head & cqMask_];
        uint64_t slot = cqe.user_data;
        if (slot < slots_.size()) {
          Slot& s = slots_[slot];
          s.busy = false;
          s.buffer.Reset();
          s.path.clear();
        }
        out_[2 * n] = static_cast<int32_t>(slot);
        out_[2 * n + 1] = cqe.res;
        n++;
        head++;
      }
      __atomic_store_n(cqHead_, head, __ATOMIC_RELEASE);
      inflight_ -= static_cast<unsigned>(n);
      try {
        onComplete_.MakeCallback(Value(), {Napi::Number::New(env_, static_cast<double>(n))}, *asyncContext_);
      } catch (const Napi::Error& e) {
        napi_fatal_exception(env_, e.Value());
        break;
      }
    }
    if (held_ && inflight_ == 0) {
      if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
      Unref();
      held_ = false;
    }
  }

  Napi::Env env_;
  int ringFd_ = -1;
  int eventFd_ = -1;
  uv_poll_t* poll_ = nullptr;
  void* sqRing_ = nullptr;
  void* cqRing_ = nullptr;
  size_t sqRingBytes_ = 0;
  size_t cqRingBytes_ = 0;
  size_t sqesBytes_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  unsigned* sqHead_ = nullptr;
  unsigned* sqTail_ = nullptr;
  unsigned sqMask_ = 0;
  unsigned sqEntries_ = 0;
  unsigned* cqHead_ = nullptr;
  unsigned* cqTail_ = nullptr;
  unsigned cqMask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
  unsigned toSubmit_ = 0;
  unsigned inflight_ = 0;
  bool held_ = false;
  std::vector<Slot> slots_;
  Napi::Reference<Napi::Int32Array> completions_;
  int32_t* out_ = nullptr;
  size_t outPairsMax_ = 0;
  Napi::FunctionReference onComplete_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
};

// allocAligned(bytes, alignment): zeroed memory from posix_memalign as an external Buffer,
// freed by its finalizer. O_DIRECT needs the address aligned, which V8's allocator does not give.
Napi::Value AllocAligned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double bytesD = info[0].As<Napi::Number>().DoubleValue();
  uint32_t alignment = info[1].As<Napi::Number>().Uint32Value();
  if (!(bytesD >= 0) || bytesD > 4294967296.0 || bytesD != static_cast<double>(static_cast<size_t>(bytesD))) {
    throw Napi::RangeError::New(env, "allocAligned: bad size");
  }
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) {
    throw Napi::RangeError::New(env, "allocAligned: alignment must be a power of two");
  }
  size_t bytes = static_cast<size_t>(bytesD);
  void* mem = nullptr;
  int err = posix_memalign(&mem, alignment, bytes == 0 ? alignment : bytes);
  if (err != 0) throw ErrnoError(env, err, "posix_memalign");
  // Not zeroed: callers read into it and use only what was read (zeroing a 4 MiB read buffer
  // cost more than the read it was for: BENCHMARKS.md, dataset).
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(bytes));
  return Napi::Buffer<uint8_t>::New(env, static_cast<uint8_t*>(mem), bytes, [bytes](Napi::Env e, uint8_t* p) {
    std::free(p);
    Napi::MemoryManagement::AdjustExternalMemory(e, -static_cast<int64_t>(bytes));
  });
}

// addressMod(buf, offset, alignment): (address of buf[offset]) mod alignment.
Napi::Value AddressMod(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "addressMod(buf, offset, alignment)");
  Napi::TypedArray buf = info[0].As<Napi::TypedArray>();
  uint32_t offset = info[1].As<Napi::Number>().Uint32Value();
  uint32_t alignment = info[2].As<Napi::Number>().Uint32Value();
  if (alignment == 0) throw Napi::RangeError::New(env, "addressMod: alignment 0");
  uintptr_t addr = reinterpret_cast<uintptr_t>(buf.ArrayBuffer().Data()) + buf.ByteOffset() + offset;
  return Napi::Number::New(env, static_cast<double>(addr % alignment));
}

// closeFd(fd): 0 or -errno. A plain syscall: close does not block on the data path.
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = info[0].As<Napi::Number>().Int32Value();
  int r = close(fd);
  return Napi::Number::New(info.Env(), r < 0 ? -errno : 0);
}

// ---- CRC32C ----
// The Castagnoli CRC (reflected polynomial 0x82F63B78) with SSE4.2's crc32 instruction where
// the CPU has it (8 bytes per instruction), else slicing by one table. crc32c(buf, previous)
// continues from `previous` exactly like the TypeScript version in storageserver/crc32c.ts.
#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t Crc32cHw(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) { c = __builtin_ia32_crc32qi(static_cast<uint32_t>(c), *p++); n--; }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    n -= 8;
  }
  while (n > 0) { c = __builtin_ia32_crc32qi(static_cast<uint32_t>(c), *p++); n--; }
  return static_cast<uint32_t>(c);
}
#endif

static uint32_t crcTable[256];

static uint32_t Crc32cSw(uint32_t crc, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) crc = crcTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

static bool hasSse42 = false;

static void InitCrc() {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crcTable[i] = c;
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  hasSse42 = __builtin_cpu_supports("sse4.2");
#endif
}

// crc32c(buf, previous = 0): the CRC32C of buf continuing from previous.
Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw Napi::TypeError::New(env, "crc32c(buf, previous)");
  Napi::TypedArray buf = info[0].As<Napi::TypedArray>();
  uint32_t previous = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  const uint8_t* p = static_cast<const uint8_t*>(buf.ArrayBuffer().Data()) + buf.ByteOffset();
  size_t n = buf.ByteLength();
  uint32_t crc = ~previous;
#if defined(__x86_64__)
  crc = hasSse42 ? Crc32cHw(crc, p, n) : Crc32cSw(crc, p, n);
#else
  crc = Crc32cSw(crc, p, n);
#endif
  return Napi::Number::New(env, static_cast<double>(~crc));
}

// crc32cBlocks(buf, blockBytes, out): the CRC32C of every blockBytes block of buf (the last one
// may be short) as u32 LE into out, and returns the CRC32C of all of buf, in one pass over the
// bytes: the blocks are summed three at a time (independent crc32 chains: on this CPU one chain
// runs at about a third of the unit's throughput) and the whole CRC is combined from the block
// CRCs (zlib's crc32_combine: multiplication by x^(8·len) modulo the polynomial), so it costs a
// few hundred cycles per block rather than a second pass. blockBytes must be a positive multiple of 8.
static constexpr uint32_t kPoly = 0x82F63B78u;

static uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

static uint32_t x2nTable[32];

static void InitCombine() {
  uint32_t p = 1u << 30;  // x^1
  x2nTable[0] = p;
  for (int n = 1; n < 32; n++) x2nTable[n] = p = MultModP(p, p);
}

// x^(n·2^k) modulo the polynomial.
static uint32_t X2nModP(uint64_t n, unsigned k) {
  uint32_t p = 1u << 31;  // x^0
  while (n) {
    if (n & 1) p = MultModP(x2nTable[k & 31], p);
    n >>= 1;
    k++;
  }
  return p;
}

// The CRC32C of A then B from crc(A), crc(B) and B's length, through the operator for that length.
static inline uint32_t CombineOp(uint32_t crcA, uint32_t crcB, uint32_t op) { return MultModP(op, crcA) ^ crcB; }

static void PutLe32(uint8_t* out, uint32_t v) {
  for (int k = 0; k < 4; k++) out[k] = static_cast<uint8_t>(v >> (8 * k));
}

static int64_t CheckOrSumBlocks(const uint8_t* p, size_t n, size_t blockBytes, const uint8_t* sums, uint8_t* out);

static uint32_t Crc32cBlocksAll(const uint8_t* p, size_t n, size_t blockBytes, uint8_t* out) {
  CheckOrSumBlocks(p, n, blockBytes, nullptr, out);
  if (n == 0) return 0;
  size_t blocks = (n + blockBytes - 1) / blockBytes;
  uint32_t op = X2nModP(blockBytes, 3);
  uint32_t whole = 0;
  for (size_t b = 0; b < blocks; b++) {
    size_t len = n - b * blockBytes < blockBytes ? n - b * blockBytes : blockBytes;
    uint32_t c = static_cast<uint32_t>(out[4 * b]) | (static_cast<uint32_t>(out[4 * b + 1]) << 8) |
                 (static_cast<uint32_t>(out[4 * b + 2]) << 16) | (static_cast<uint32_t>(out[4 * b + 3]) << 24);
    whole = b == 0 ? c : CombineOp(whole, c, len == blockBytes ? op : X2nModP(len, 3));
  }
  return whole;
}

// Three blocks at a time: independent chains keep the crc32 unit busy. With `sums`, returns the
// first block whose CRC differs from it (-1: none); otherwise writes each block's CRC to `out`.
#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static int64_t CheckOrSumBlocksHw(const uint8_t* p, size_t n, size_t blockBytes, const uint8_t* sums, uint8_t* out) {
  size_t blocks = (n + blockBytes - 1) / blockBytes;
  size_t full = n / blockBytes;
  size_t b = 0;
  for (; b + 3 <= full; b += 3) {
    const uint8_t* a0 = p + b * blockBytes;
    const uint8_t* a1 = a0 + blockBytes;
    const uint8_t* a2 = a1 + blockBytes;
    uint64_t c0 = 0xffffffffu, c1 = 0xffffffffu, c2 = 0xffffffffu;
    for (size_t i = 0; i < blockBytes; i += 8) {
      uint64_t v0, v1, v2;
      std::memcpy(&v0, a0 + i, 8);
      std::memcpy(&v1, a1 + i, 8);
      std::memcpy(&v2, a2 + i, 8);
      c0 = __builtin_ia32_crc32di(c0, v0);
      c1 = __builtin_ia32_crc32di(c1, v1);
      c2 = __builtin_ia32_crc32di(c2, v2);
    }
    uint32_t got[3] = { ~static_cast<uint32_t>(c0), ~static_cast<uint32_t>(c1), ~static_cast<uint32_t>(c2) };
    for (int k = 0; k < 3; k++) {
      if (sums == nullptr) { PutLe32(out + 4 * (b + k), got[k]); continue; }
      uint32_t want;
      std::memcpy(&want, sums + 4 * (b + k), 4);  // little-endian host (x86_64)
      if (got[k] != want) return static_cast<int64_t>(b + k);
    }
  }
  for (; b < blocks; b++) {
    size_t at = b * blockBytes;
    size_t len = n - at < blockBytes ? n - at : blockBytes;
    uint32_t got = ~Crc32cHw(0xffffffffu, p + at, len);
    if (sums == nullptr) { PutLe32(out + 4 * b, got); continue; }
    uint32_t want;
    std::memcpy(&want, sums + 4 * b, 4);
    if (got != want) return static_cast<int64_t>(b);
  }
  return -1;
}
#endif

static int64_t CheckOrSumBlocksSw(const uint8_t* p, size_t n, size_t blockBytes, const uint8_t* sums, uint8_t* out) {
  for (size_t b = 0, at = 0; at < n; b++, at += blockBytes) {
    size_t len = n - at < blockBytes ? n - at : blockBytes;
    uint32_t got = ~Crc32cSw(0xffffffffu, p + at, len);
    if (sums == nullptr) { PutLe32(out + 4 * b, got); continue; }
    uint32_t want = static_cast<uint32_t>(sums[4 * b]) | (static_cast<uint32_t>(sums[4 * b + 1]) << 8) |
                    (static_cast<uint32_t>(sums[4 * b + 2]) << 16) | (static_cast<uint32_t>(sums[4 * b + 3]) << 24);
    if (got != want) return static_cast<int64_t>(b);
  }
  return -1;
}

static int64_t CheckOrSumBlocks(const uint8_t* p, size_t n, size_t blockBytes, const uint8_t* sums, uint8_t* out) {
#if defined(__x86_64__)
  if (hasSse42) return CheckOrSumBlocksHw(p, n, blockBytes, sums, out);
#endif
  return CheckOrSumBlocksSw(p, n, blockBytes, sums, out);
}

static const uint8_t* TypedBytes(const Napi::TypedArray& t) {
  return static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
}

static size_t BlockBytesArg(Napi::Env env, const Napi::Value& v) {
  uint32_t blockBytes = v.As<Napi::Number>().Uint32Value();
  if (blockBytes == 0 || blockBytes % 8 != 0) throw Napi::RangeError::New(env, "blockBytes must be a positive multiple of 8");
  return blockBytes;
}

Napi::Value Crc32cBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || !info[2].IsTypedArray()) throw Napi::TypeError::New(env, "crc32cBlocks(buf, blockBytes, out)");
  Napi::TypedArray buf = info[0].As<Napi::TypedArray>();
  size_t blockBytes = BlockBytesArg(env, info[1]);
  Napi::TypedArray out = info[2].As<Napi::TypedArray>();
  size_t n = buf.ByteLength();
  if (out.ByteLength() < 4 * ((n + blockBytes - 1) / blockBytes)) throw Napi::RangeError::New(env, "crc32cBlocks: out is too small");
  uint8_t* o = const_cast<uint8_t*>(TypedBytes(out));
  uint32_t whole = Crc32cBlocksAll(TypedBytes(buf), n, blockBytes, o);
  return Napi::Number::New(env, static_cast<double>(whole));
}

// crc32cCheckBlocks(buf, blockBytes, sums): -1 when every blockBytes block of buf (the last may
// be short) has the CRC32C sums holds for it (u32 LE each, from sums[0]), else the first bad one.
Napi::Value Crc32cCheckBlocks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || !info[2].IsTypedArray()) throw Napi::TypeError::New(env, "crc32cCheckBlocks(buf, blockBytes, sums)");
  Napi::TypedArray buf = info[0].As<Napi::TypedArray>();
  size_t blockBytes = BlockBytesArg(env, info[1]);
  Napi::TypedArray sums = info[2].As<Napi::TypedArray>();
  size_t n = buf.ByteLength();
  if (sums.ByteLength() < 4 * ((n + blockBytes - 1) / blockBytes)) throw Napi::RangeError::New(env, "crc32cCheckBlocks: too few sums");
  int64_t bad = CheckOrSumBlocks(TypedBytes(buf), n, blockBytes, TypedBytes(sums), nullptr);
  return Napi::Number::New(env, static_cast<double>(bad));
}

Napi::Value Crc32cHardware(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), hasSse42); }

// tuneAllocator(mmapThresholdBytes, trimThresholdBytes): glibc's malloc serves allocations up to
// the first from its heap instead of a fresh mmap each (a fresh 4 MiB frame or read buffer is 1,024
// page faults on first touch and an munmap when collected), and keeps up to the second free at the
// heap's top. True where applied (glibc), false elsewhere.
Napi::Value TuneAllocator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
#if defined(__GLIBC__)
  int mmapThreshold = info[0].As<Napi::Number>().Int32Value();
  int trimThreshold = info[1].As<Napi::Number>().Int32Value();
  bool ok = mallopt(M_MMAP_THRESHOLD, mmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, trimThreshold) == 1;
  return Napi::Boolean::New(env, ok);
#else
  (void)info;
  return Napi::Boolean::New(env, false);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitCrc();
  InitCombine();
  exports.Set("tuneAllocator", Napi::Function::New(env, TuneAllocator));
  exports.Set("crc32c", Napi::Function::New(env, Crc32c));
  exports.Set("crc32cHardware", Napi::Function::New(env, Crc32cHardware));
  exports.Set("crc32cBlocks", Napi::Function::New(env, Crc32cBlocks));
  exports.Set("crc32cCheckBlocks", Napi::Function::New(env, Crc32cCheckBlocks));
  exports.Set("Ring", Ring::Init(env));
  exports.Set("allocAligned", Napi::Function::New(env, AllocAligned));
  exports.Set("addressMod", Napi::Function::New(env, AddressMod));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
  return exports;
}

}  // namespace

NODE_API_MODULE(flyfs_io, Init)
