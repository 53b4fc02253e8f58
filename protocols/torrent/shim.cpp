// The shim over libtorrent-rasterbar 2.0: C in, C out (shim.h). Nothing
// here may throw across the boundary, so each entry point catches all.
#include "protocols/torrent/shim.h"

#include <libtorrent/add_torrent_params.hpp>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/create_torrent.hpp>
#include <libtorrent/read_resume_data.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/settings_pack.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/torrent_status.hpp>
#include <libtorrent/write_resume_data.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

// libtorrent's own bound on a .torrent it loads from a file.
#define TORRENT_FILE_MAX 10000000
// A resume file is a few bytes a piece and a peer list.
#define TORRENT_RESUME_MAX (16 << 20)

// A checked torrent (torrent_add.check) from its add to the verdict on its
// data, which the first status after libtorrent's check gives.
struct pending_check {
	std::string name, save_dir;
	int pieces = 0;
	bool hashed = false;	// its data was hashed, not taken on resume data's word
	bool checked = false;	// torrent_checked_alert came
};

// One resume file to write: made on the loop's thread (the session's
// tables are the loop's), written on another.
struct resume_write {
	std::string hash, path;
	std::vector<char> bytes;
	bool dated = false;		// a checked torrent's: dated when its data last matched
	struct timespec date {};
};

// The thread that writes the periodic saves (torrent_session_save_resume()),
// so that the loop never waits on a disk. Started at the first save; the
// wind-down lets it finish its queue and joins it before it writes the
// last resume data, which therefore always wins.
struct resume_writer {
	std::mutex lock;
	std::condition_variable wake;
	std::deque<resume_write> todo;
	bool stopping = false;
	torrent_stop_report report{};	// since the last torrent_session_resume_report()
	std::thread thread;

	void stop() noexcept
	{
		try {
			{
				std::lock_guard<std::mutex> held(lock);
				stopping = true;
				wake.notify_one();
			}
			if (thread.joinable())
				thread.join();
		} catch (...) {
			// Not joined: terminate() at destruction beats a write into a freed queue.
		}
	}
	~resume_writer() { stop(); }
};

struct torrent_session {
	std::unique_ptr<lt::session> session;
	std::map<std::string, lt::torrent_handle> handles;	// by v1 infohash, hex
	std::map<std::string, torrent_figures> figures;
	std::map<std::string, pending_check> checking;		// by v1 infohash
	std::set<std::string> mismatched;			// checked, data did not match: paused
	// Of a checked torrent, when its data was last known to match: its
	// resume file gets it as mtime, so that a file changed since, even
	// while the daemon ran, is hashed at the next start.
	std::map<std::string, struct timespec> verified;
	// The upload total at the last periodic save asked for, by infohash: a
	// seeder's resume data changes mostly there, which libtorrent 2.0.8's
	// need_save_resume_data() does not count.
	std::map<std::string, int64_t> saved_upload;
	std::unique_ptr<resume_writer> writer;
	std::string resume_dir, resume_tag;
};

namespace {

void set_error(char *err, size_t err_len, const char *what)
{
	if (err_len > 0)
		std::snprintf(err, err_len, "%s", what);
}

std::string hex_of(const lt::sha1_hash &hash)
{
	std::ostringstream out;
	out << hash;
	return out.str();
}

void copy_text(char *dst, size_t len, const std::string &src)
{
	if (len > 0)
		std::snprintf(dst, len, "%s", src.c_str());
}

lt::settings_pack settings_of(const torrent_session_options *opts)
{
	lt::settings_pack p;

	p.set_str(lt::settings_pack::listen_interfaces, opts->listen);
	p.set_bool(lt::settings_pack::enable_dht, opts->dht);
	p.set_bool(lt::settings_pack::enable_lsd, opts->lsd);
	p.set_bool(lt::settings_pack::enable_upnp, opts->upnp);
	p.set_bool(lt::settings_pack::enable_natpmp, opts->natpmp);
	p.set_bool(lt::settings_pack::enable_outgoing_utp, opts->utp);
	p.set_bool(lt::settings_pack::enable_incoming_utp, opts->utp);
	// The port written is the port: no quiet move to the next one.
	p.set_int(lt::settings_pack::max_retry_port_bind, 0);
	p.set_bool(lt::settings_pack::listen_system_port_fallback, false);
	p.set_int(lt::settings_pack::upload_rate_limit, opts->upload_rate);
	p.set_int(lt::settings_pack::connections_limit, opts->max_peers);
	p.set_int(lt::settings_pack::alert_mask, lt::alert_category::error | lt::alert_category::status |
							 lt::alert_category::storage | lt::alert_category::tracker |
							 lt::alert_category::peer | lt::alert_category::connect);
	return p;
}

const char *state_name(lt::torrent_status::state_t state)
{
	switch (state) {
	case lt::torrent_status::checking_files: return "checking";
	case lt::torrent_status::downloading_metadata: return "metadata";
	case lt::torrent_status::downloading: return "downloading";
	case lt::torrent_status::finished: return "finished";
	case lt::torrent_status::seeding: return "seeding";
	case lt::torrent_status::checking_resume_data: return "resuming";
	default: return "unknown";
	}
}

std::string resume_file(const torrent_session *s, const std::string &hash)
{
	return s->resume_dir + "/" + s->resume_tag + "-" + hash + ".resume";
}

// The verdict on a checked torrent's data, once libtorrent has checked it:
// whole, it is seeded; otherwise paused, so that no peer is offered a
// torrent this seeder cannot finish, and its resume data dropped, so that
// the next start hashes the data again.
void judge(torrent_session *s, const lt::torrent_status &st, const std::string &hash, torrent_alert_fn *fn, void *arg)
{
	auto it = s->checking.find(hash);
	char text[1024];

	if (it == s->checking.end() || !it->second.checked || st.state == lt::torrent_status::checking_files ||
	    st.state == lt::torrent_status::checking_resume_data)
		return;
	const pending_check &p = it->second;
	if (st.is_seeding) {
		std::snprintf(text, sizeof(text), "%s: %s: seeding", p.name.c_str(),
			      p.hashed ? "data hashed, every piece matches"
				       : "resume data taken, files unchanged since: not hashed again");
		fn(arg, LOG_INFO, text);
	} else {
		st.handle.pause();
		s->mismatched.insert(hash);
		std::remove(resume_file(s, hash).c_str());
		std::snprintf(text, sizeof(text),
			      "%s: the data under %s does not match the torrent (%d of %d pieces missing or different): not served",
			      p.name.c_str(), p.save_dir.c_str(), p.pieces - st.num_pieces, p.pieces);
		fn(arg, LOG_WARNING, text);
	}
	s->checking.erase(it);
}

void record_figures(torrent_session *s, const lt::state_update_alert *update, torrent_alert_fn *fn, void *arg)
{
	for (const lt::torrent_status &st : update->status) {
		torrent_figures f{};
		std::string hash = hex_of(st.info_hashes.v1);

		judge(s, st, hash, fn, arg);
		copy_text(f.info_hash, sizeof(f.info_hash), hash);
		copy_text(f.state, sizeof(f.state),
			  s->mismatched.count(hash)		       ? "mismatch"
			  : (st.flags & lt::torrent_flags::paused) ? "paused"
								   : state_name(st.state));
		f.peers = static_cast<unsigned>(st.num_peers);
		f.uploaded = static_cast<uint64_t>(st.all_time_upload);
		f.upload_rate = static_cast<unsigned>(st.upload_payload_rate);
		s->figures[hash] = f;
	}
}

// Errors a user must see; the chatter of single peers only when debugging.
int level_of(const lt::alert *a)
{
	if (lt::alert_cast<lt::listen_failed_alert>(a) || lt::alert_cast<lt::tracker_error_alert>(a) ||
	    lt::alert_cast<lt::file_error_alert>(a) || lt::alert_cast<lt::torrent_error_alert>(a) ||
	    lt::alert_cast<lt::tracker_warning_alert>(a) || lt::alert_cast<lt::scrape_failed_alert>(a))
		return LOG_WARNING;
	if (const auto *added = lt::alert_cast<lt::add_torrent_alert>(a))
		return added->error ? LOG_WARNING : LOG_INFO;
	if (lt::alert_cast<lt::listen_succeeded_alert>(a) || lt::alert_cast<lt::torrent_removed_alert>(a))
		return LOG_INFO;
	return LOG_DEBUG;
}

// What a checked torrent goes through: hashed or not (a state it passes),
// then checked, when the status update asked for now brings the verdict
// (judge()).
void follow_check(torrent_session *s, const lt::alert *a)
{
	const auto *changed = lt::alert_cast<lt::state_changed_alert>(a);
	const auto *checked = lt::alert_cast<lt::torrent_checked_alert>(a);
	const lt::torrent_alert *ta = changed ? static_cast<const lt::torrent_alert *>(changed) : checked;

	if (ta == nullptr)
		return;
	auto it = s->checking.find(hex_of(ta->handle.info_hashes().v1));
	if (it == s->checking.end())
		return;
	if (changed != nullptr && changed->state == lt::torrent_status::checking_files)
		it->second.hashed = true;
	if (checked != nullptr) {
		it->second.checked = true;
		// Its state changed with the check: the next update has it.
		s->session->post_torrent_updates();
	}
}

void queue_resume_write(torrent_session *s, const lt::add_torrent_params &params);

void handle_alert(torrent_session *s, const lt::alert *a, torrent_alert_fn *fn, void *arg)
{
	if (const auto *update = lt::alert_cast<lt::state_update_alert>(a)) {
		record_figures(s, update, fn, arg);
		return;
	}
	if (const auto *added = lt::alert_cast<lt::add_torrent_alert>(a)) {
		if (!added->error && added->params.ti)
			s->handles[hex_of(added->params.ti->info_hashes().v1)] = added->handle;
	}
	if (const auto *saved = lt::alert_cast<lt::save_resume_data_alert>(a)) {
		try {
			queue_resume_write(s, saved->params);
		} catch (...) {
			// No memory or no thread: the next period asks again.
			s->saved_upload.erase(hex_of(saved->params.info_hashes.v1));
		}
	}
	follow_check(s, a);
	fn(arg, level_of(a), a->message().c_str());
}

std::string parent_of(const std::string &path)
{
	std::string::size_type slash = path.find_last_of('/');

	return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

struct owned_fd {
	int fd;
	~owned_fd()
	{
		if (fd >= 0)
			close(fd);
	}
};

// A small file whole and its mtime. Opened without blocking, so that a
// FIFO in its place cannot hold the loop: it is refused as not regular.
void read_small_file(const std::string &path, size_t max, std::vector<char> &out, struct timespec *mtime)
{
	owned_fd f{ open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC) };
	struct stat st;
	size_t got = 0;

	if (f.fd < 0 || fstat(f.fd, &st) < 0)
		throw std::system_error(errno, std::generic_category(), "cannot open");
	if (!S_ISREG(st.st_mode))
		throw std::runtime_error("not a regular file");
	if (static_cast<uint64_t>(st.st_size) > max)
		throw std::runtime_error("larger than " + std::to_string(max) + " bytes");
	out.resize(static_cast<size_t>(st.st_size));
	while (got < out.size()) {
		ssize_t n = read(f.fd, out.data() + got, out.size() - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			throw std::system_error(n < 0 ? errno : EIO, std::generic_category(), "cannot read");
		got += static_cast<size_t>(n);
	}
	if (mtime != nullptr)
		*mtime = st.st_mtim;
}

// A .torrent as this daemon seeds it: one that libtorrent takes, with a v1
// infohash, by which torrents are known here.
std::shared_ptr<lt::torrent_info> load_torrent(const char *path)
{
	std::vector<char> bytes;
	lt::error_code ec;

	read_small_file(path, TORRENT_FILE_MAX, bytes, nullptr);
	auto ti = std::make_shared<lt::torrent_info>(lt::span<const char>(bytes.data(), static_cast<long>(bytes.size())),
						     ec, lt::from_span);
	if (ec)
		throw std::runtime_error("not a valid .torrent: " + ec.message());
	if (!ti->info_hashes().has_v1())
		throw std::runtime_error("a v2-only torrent (torrents are known by their v1 infohash)");
	return ti;
}

bool later(const struct timespec &a, const struct timespec &b)
{
	return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

// A file of ti changed (or gone) since when: libtorrent 2.0 takes resume
// data on the files' sizes alone, and would seed a file rewritten in place
// as the pieces it had.
bool changed_since(const lt::torrent_info &ti, const std::string &save_dir, const struct timespec &when)
{
	const lt::file_storage &fs = ti.files();
	struct stat st;

	for (lt::file_index_t i : fs.file_range()) {
		if (fs.pad_file_at(i))
			continue;
		if (stat(fs.file_path(i, save_dir).c_str(), &st) < 0 || later(st.st_mtim, when))
			return true;
	}
	return false;
}

// The resume data of ti into atp, when there is some to trust: its own
// infohash, and for a checked torrent written after its files last
// changed. Trackers and web seeds come from the .torrent (a changed
// tracker option is a new .torrent of the same infohash).
bool read_resume(torrent_session *s, const lt::torrent_info &ti, const torrent_add *add, lt::add_torrent_params &atp)
{
	std::vector<char> bytes;
	struct timespec written;
	lt::error_code ec;
	std::string hash = hex_of(ti.info_hashes().v1);

	try {
		read_small_file(resume_file(s, hash), TORRENT_RESUME_MAX, bytes, &written);
	} catch (const std::exception &) {
		return false;	// none (or none readable): the torrent starts afresh
	}
	if (add->check && changed_since(ti, add->save_dir, written))
		return false;
	lt::add_torrent_params rd = lt::read_resume_data(bytes, ec);
	if (ec || rd.info_hashes.v1 != ti.info_hashes().v1)
		return false;
	rd.trackers.clear();
	rd.tracker_tiers.clear();
	rd.url_seeds.clear();
	rd.http_seeds.clear();
	atp = std::move(rd);
	if (add->check)
		s->verified[hash] = written;
	return true;
}

void note_failure(torrent_stop_report *report, const std::string &why)
{
	if (report->error[0] == '\0')
		copy_text(report->error, sizeof(report->error), why);
}

bool write_all(int fd, const std::vector<char> &bytes)
{
	size_t done = 0;

	while (done < bytes.size()) {
		ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		done += static_cast<size_t>(n);
	}
	return true;
}

// The file of params, and its date for a checked torrent.
resume_write resume_write_of(const torrent_session *s, const lt::add_torrent_params &params)
{
	resume_write w;
	auto verified = s->verified.find(w.hash = hex_of(params.info_hashes.v1));

	w.path = resume_file(s, w.hash);
	w.bytes = lt::write_resume_data_buf(params);
	if (verified != s->verified.end()) {
		w.dated = true;
		w.date = verified->second;
	}
	return w;
}

// Written to a temporary file, synced, then renamed over the old one: the
// next start reads the old data or the new, never a part of either. A
// checked torrent's file is dated when its data was last known to match.
// Both the periodic saves and the stop's come here, never at once (the
// wind-down joins the writer first): one .tmp name per torrent is enough.
void write_resume(const resume_write &w, torrent_stop_report *report)
{
	std::string tmp = w.path + ".tmp";
	int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	struct timespec dates[2] = { w.date, w.date };

	bool ok = fd >= 0 && write_all(fd, w.bytes) && (!w.dated || futimens(fd, dates) == 0) && fsync(fd) == 0;
	int error = errno;

	if (fd >= 0 && close(fd) < 0 && ok) {
		ok = false;
		error = errno;
	}
	if (ok && std::rename(tmp.c_str(), w.path.c_str()) == 0) {
		report->saved++;
		return;
	}
	if (ok)
		error = errno;
	std::remove(tmp.c_str());
	report->failed++;
	note_failure(report, w.path + ": " + std::strerror(error));
}

void write_resume_file(const torrent_session *s, const lt::add_torrent_params &params, torrent_stop_report *report)
{
	write_resume(resume_write_of(s, params), report);
}

void writer_thread(resume_writer *w)
{
	std::unique_lock<std::mutex> held(w->lock);

	for (;;) {
		w->wake.wait(held, [w] { return w->stopping || !w->todo.empty(); });
		if (w->todo.empty())
			return;		// stopping, and all written
		resume_write one = std::move(w->todo.front());
		w->todo.pop_front();
		held.unlock();
		torrent_stop_report done{};
		write_resume(one, &done);
		held.lock();
		w->report.saved += done.saved;
		w->report.failed += done.failed;
		if (done.failed > 0)
			note_failure(&w->report, done.error);
	}
}

// A periodic save's data, from the alert path: to the writer. A torrent
// removed meanwhile is not written back (its file went with it).
void queue_resume_write(torrent_session *s, const lt::add_torrent_params &params)
{
	resume_write w = resume_write_of(s, params);

	if (!s->handles.count(w.hash))
		return;
	if (!s->writer) {
		auto writer = std::make_unique<resume_writer>();
		writer->thread = std::thread(writer_thread, writer.get());
		s->writer = std::move(writer);
	}
	std::lock_guard<std::mutex> held(s->writer->lock);
	s->writer->todo.push_back(std::move(w));
	s->writer->wake.notify_one();
}

// Asks for the resume data of every torrent that seeds (one still being
// checked, or whose data did not match, keeps what it had: its next start
// checks again) and writes each as it comes, until all are in or the
// time is up. The infohashes of all the session's torrents go to kept.
void save_resume_files(torrent_session *s, std::set<std::string> &kept, torrent_stop_report *report)
{
	auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(TORRENT_RESUME_SECONDS);
	std::vector<lt::alert *> alerts;
	std::set<std::string> waiting;

	for (const lt::torrent_handle &h : s->session->get_torrents()) {
		lt::torrent_status st = h.status({});
		std::string hash = hex_of(st.info_hashes.v1);

		kept.insert(hash);
		if (!st.has_metadata || !st.is_seeding || s->mismatched.count(hash) || s->checking.count(hash))
			continue;
		h.save_resume_data();
		waiting.insert(hash);
	}
	// By infohash: the answer to a periodic save asked for before the stop
	// may come first, and is written too (it is as fresh, near enough).
	while (!waiting.empty()) {
		auto left = deadline - std::chrono::steady_clock::now();
		if (left <= std::chrono::steady_clock::duration::zero()) {
			report->failed += static_cast<unsigned>(waiting.size());
			note_failure(report, "timed out after " + std::to_string(TORRENT_RESUME_SECONDS) + " s");
			return;
		}
		if (s->session->wait_for_alert(std::chrono::duration_cast<lt::time_duration>(left)) == nullptr)
			continue;
		s->session->pop_alerts(&alerts);
		for (const lt::alert *a : alerts) {
			if (const auto *saved = lt::alert_cast<lt::save_resume_data_alert>(a)) {
				if (waiting.erase(hex_of(saved->params.info_hashes.v1)) > 0)
					write_resume_file(s, saved->params, report);
			} else if (const auto *failed = lt::alert_cast<lt::save_resume_data_failed_alert>(a)) {
				// A periodic save's "not modified" is no answer to ours.
				if (failed->error == lt::errors::resume_data_not_modified || !failed->handle.is_valid() ||
				    waiting.erase(hex_of(failed->handle.info_hashes().v1)) == 0)
					continue;
				report->failed++;
				note_failure(report, failed->torrent_name() + std::string(": ") + failed->error.message());
			}
		}
	}
}

// TAG-INFOHASH.resume (or .resume.tmp, left by a crash) of this tag: the
// infohash, else "".
std::string resume_hash_of(const torrent_session *s, const std::string &name)
{
	const std::string &tag = s->resume_tag;
	size_t at = tag.size() + 1, end = at + 40;

	if (name.compare(0, tag.size(), tag) != 0 || name.size() <= end || name[tag.size()] != '-')
		return "";
	if (name.compare(end, std::string::npos, ".resume") != 0 && name.compare(end, std::string::npos, ".resume.tmp") != 0)
		return "";
	if (name.find_first_not_of("0123456789abcdef", at) < end)
		return "";
	return name.substr(at, 40);
}

// One resume file per torrent seeded: those of this tag's torrents that are
// gone (removed while the daemon was down, or by a reload that changed
// the stream) go.
void drop_stale_resume_files(const torrent_session *s, const std::set<std::string> &kept, torrent_stop_report *report)
{
	DIR *dir = opendir(s->resume_dir.c_str());
	std::vector<std::string> stale;

	if (dir == nullptr)
		return;
	while (const struct dirent *e = readdir(dir)) {
		std::string hash = resume_hash_of(s, e->d_name);
		if (!hash.empty() && !kept.count(hash))
			stale.push_back(s->resume_dir + "/" + e->d_name);
	}
	closedir(dir);
	for (const std::string &path : stale)
		if (std::remove(path.c_str()) == 0)
			report->dropped++;
}

// On the wind-down thread (or, failing one, the caller's): the loop no
// longer touches s. The resume data first, while the session runs, then
// libtorrent's goodbye to trackers and peers.
void wind_down(std::unique_ptr<torrent_session> s, int done_fd, torrent_stop_report *report) noexcept
{
	torrent_stop_report ignored{};

	if (report == nullptr)
		report = &ignored;
	if (s->writer) {
		// Its queue written, before the last data: the last wins.
		s->writer->stop();
		torrent_stop_report &w = s->writer->report;
		report->failed += w.failed;
		if (w.failed > 0)
			note_failure(report, w.error);
	}
	try {
		std::set<std::string> kept;
		save_resume_files(s.get(), kept, report);
		drop_stale_resume_files(s.get(), kept, report);
	} catch (const std::exception &e) {
		note_failure(report, e.what());
	} catch (...) {
		note_failure(report, "unknown error from libtorrent");
	}
	try {
		lt::session_proxy proxy = s->session->abort();
		s.reset();
		// proxy's destructor waits for libtorrent's threads here.
	} catch (...) {
		s.reset();
	}
	uint64_t one = 1;
	if (done_fd >= 0 && write(done_fd, &one, sizeof(one)) < 0)
		return;
}

} // namespace

extern "C" {

torrent_session *torrent_session_new(const torrent_session_options *opts, int notify_fd, char *err, size_t err_len)
{
	try {
		auto s = std::make_unique<torrent_session>();
		s->resume_dir = opts->resume_dir;
		s->resume_tag = opts->resume_tag;
		s->session = std::make_unique<lt::session>(lt::session_params(settings_of(opts)));
		s->session->set_alert_notify([notify_fd] {
			uint64_t one = 1;
			// Full eventfd counter: alerts wait already, so nothing is lost.
			if (write(notify_fd, &one, sizeof(one)) < 0)
				return;
		});
		return s.release();
	} catch (const std::exception &e) {
		set_error(err, err_len, e.what());
	} catch (...) {
		set_error(err, err_len, "unknown error from libtorrent");
	}
	return nullptr;
}

int torrent_session_apply(torrent_session *s, const torrent_session_options *opts, char *err, size_t err_len)
{
	try {
		s->session->apply_settings(settings_of(opts));
		return 0;
	} catch (const std::exception &e) {
		set_error(err, err_len, e.what());
	} catch (...) {
		set_error(err, err_len, "unknown error from libtorrent");
	}
	return -1;
}

int torrent_make(const char *path, const torrent_make_options *opts, const char *out_file, char *err, size_t err_len)
{
	try {
		lt::file_storage fs;
		lt::add_files(fs, path);
		if (fs.num_files() == 0) {
			set_error(err, err_len, "no files to make a torrent of");
			return -1;
		}
		lt::create_torrent t(fs, 0, opts->v1_only ? lt::create_torrent::v1_only : lt::create_flags_t{});
		if (opts->tracker != nullptr && opts->tracker[0] != '\0')
			t.add_tracker(opts->tracker);
		if (opts->web_seed != nullptr && opts->web_seed[0] != '\0')
			t.add_url_seed(opts->web_seed);
		t.set_creator("chassisd");
		lt::set_piece_hashes(t, parent_of(path));
		std::vector<char> bytes;
		lt::bencode(std::back_inserter(bytes), t.generate());
		std::string tmp = std::string(out_file) + ".tmp";
		std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
		out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
		out.close();
		if (!out || std::rename(tmp.c_str(), out_file) != 0) {
			std::remove(tmp.c_str());
			set_error(err, err_len, "cannot write the .torrent file");
			return -1;
		}
		return 0;
	} catch (const std::exception &e) {
		set_error(err, err_len, e.what());
	} catch (...) {
		set_error(err, err_len, "unknown error from libtorrent");
	}
	return -1;
}

int torrent_file_read(const char *torrent_file, char info_hash[41], char *name, size_t name_len, char *err,
		      size_t err_len)
{
	try {
		std::shared_ptr<lt::torrent_info> ti = load_torrent(torrent_file);
		copy_text(info_hash, 41, hex_of(ti->info_hashes().v1));
		copy_text(name, name_len, ti->name());
		return 0;
	} catch (const std::exception &e) {
		set_error(err, err_len, e.what());
	} catch (...) {
		set_error(err, err_len, "unknown error from libtorrent");
	}
	return -1;
}

int torrent_session_add(torrent_session *s, const torrent_add *add, char info_hash[41], char *name, size_t name_len,
			bool *resumed, char *err, size_t err_len)
{
	try {
		lt::add_torrent_params atp;
		std::shared_ptr<lt::torrent_info> ti = load_torrent(add->torrent_file);
		std::string hash = hex_of(ti->info_hashes().v1);
		struct timespec now;

		// Before it is hashed: a file changed meanwhile counts as changed.
		clock_gettime(CLOCK_REALTIME, &now);
		s->verified[hash] = now;
		*resumed = read_resume(s, *ti, add, atp);
		atp.ti = ti;
		atp.save_path = add->save_dir;
		atp.flags &= ~(lt::torrent_flags::paused | lt::torrent_flags::auto_managed | lt::torrent_flags::seed_mode);
		if (add->check) {
			// A seeder only: what does not match is never fetched into
			// the administrator's files.
			atp.flags |= lt::torrent_flags::upload_mode;
			pending_check &p = s->checking[hash];
			p = pending_check{};
			p.name = ti->name();
			p.save_dir = add->save_dir;
			p.pieces = ti->num_pieces();
		} else {
			atp.flags |= lt::torrent_flags::seed_mode;
			s->verified.erase(hash);
		}
		s->mismatched.erase(hash);
		copy_text(info_hash, 41, hash);
		copy_text(name, name_len, ti->name());
		s->session->async_add_torrent(std::move(atp));
		return 0;
	} catch (const std::exception &e) {
		set_error(err, err_len, e.what());
	} catch (...) {
		set_error(err, err_len, "unknown error from libtorrent");
	}
	return -1;
}

int torrent_session_remove(torrent_session *s, const char *info_hash, char *err, size_t err_len)
{
	try {
		auto it = s->handles.find(info_hash);
		if (it == s->handles.end()) {
			set_error(err, err_len, "not seeded");
			return -1;
		}
		s->session->remove_torrent(it->second);
		s->handles.erase(it);
		s->figures.erase(info_hash);
		s->checking.erase(info_hash);
		s->mismatched.erase(info_hash);
		s->verified.erase(info_hash);
		s->saved_upload.erase(info_hash);
		if (s->writer) {
			std::lock_guard<std::mutex> held(s->writer->lock);
			auto &todo = s->writer->todo;
			for (auto it = todo.begin(); it != todo.end();)
				it = it->hash == info_hash ? todo.erase(it) : std::next(it);
		}
		// Resume data of a torrent no longer seeded is dead weight.
		std::remove(resume_file(s, info_hash).c_str());
		return 0;
	} catch (const std::exception &e) {
		set_error(err, err_len, e.what());
	} catch (...) {
		set_error(err, err_len, "unknown error from libtorrent");
	}
	return -1;
}

void torrent_session_alerts(torrent_session *s, torrent_alert_fn *fn, void *arg)
{
	try {
		std::vector<lt::alert *> alerts;
		s->session->pop_alerts(&alerts);
		for (const lt::alert *a : alerts)
			handle_alert(s, a, fn, arg);
	} catch (const std::exception &e) {
		fn(arg, LOG_ERR, e.what());
	} catch (...) {
		fn(arg, LOG_ERR, "unknown error from libtorrent");
	}
}

void torrent_session_post_updates(torrent_session *s)
{
	try {
		s->session->post_torrent_updates();
	} catch (...) {
		// Figures a second older: nothing a user loses.
	}
}

bool torrent_session_figures(const torrent_session *s, const char *info_hash, torrent_figures *out)
{
	try {
		auto it = s->figures.find(info_hash);
		if (it == s->figures.end())
			return false;
		*out = it->second;
		return true;
	} catch (...) {
		return false;
	}
}

unsigned torrent_session_save_resume(torrent_session *s)
{
	unsigned asked = 0;

	try {
		for (const auto &one : s->handles) {
			const std::string &hash = one.first;
			auto f = s->figures.find(hash);

			// As at the stop: a torrent being checked, or whose data did
			// not match, keeps what it had.
			if (f == s->figures.end() || std::strcmp(f->second.state, "seeding") != 0 ||
			    s->mismatched.count(hash) || s->checking.count(hash))
				continue;
			auto last = s->saved_upload.find(hash);
			int64_t uploaded = static_cast<int64_t>(f->second.uploaded);
			if (last == s->saved_upload.end() || last->second != uploaded) {
				one.second.save_resume_data();
				s->saved_upload[hash] = uploaded;
			} else {
				// libtorrent's own need_save_resume_data(), asked without
				// a blocking call: not modified comes back as a failure.
				one.second.save_resume_data(lt::torrent_handle::only_if_modified);
			}
			asked++;
		}
	} catch (...) {
		// The next period asks again.
	}
	return asked;
}

void torrent_session_resume_report(torrent_session *s, torrent_stop_report *out)
{
	*out = torrent_stop_report{};
	if (!s->writer)
		return;
	std::lock_guard<std::mutex> held(s->writer->lock);
	*out = s->writer->report;
	s->writer->report = torrent_stop_report{};
}

int torrent_session_stop(torrent_session *s, int done_fd, torrent_stop_report *report)
{
	torrent_session *raw = s;

	try {
		// The loop no longer reads alerts: the wind-down takes them.
		s->session->set_alert_notify([] {});
	} catch (...) {
		// No alert left unread is worth a stop that fails.
	}
	if (done_fd < 0) {
		wind_down(std::unique_ptr<torrent_session>(raw), -1, report);
		return -1;
	}
	try {
		// The session's proxy waits for libtorrent's threads, and resume
		// data comes as alerts: neither on the loop's thread.
		std::thread([raw, done_fd, report] { wind_down(std::unique_ptr<torrent_session>(raw), done_fd, report); })
			.detach();
		return 0;
	} catch (...) {
		// No thread: raw is still ours.
		wind_down(std::unique_ptr<torrent_session>(raw), -1, report);
		return -1;
	}
}

} // extern "C"

namespace {

struct make_job {
	std::string path, out_file, tracker, web_seed, error;
	bool v1_only = true;
};

// Shared by the loop's side and the thread: whichever lets go last frees
// it, and with it the eventfd, so the thread never writes to a closed fd.
struct maker_shared {
	std::mutex lock;
	std::condition_variable wake;
	std::deque<make_job> todo, done;
	bool stopping = false;
	int fd = -1;
	~maker_shared()
	{
		if (fd >= 0)
			close(fd);
	}
};

void make_one(make_job &job)
{
	torrent_make_options opts = { job.tracker.c_str(), job.web_seed.c_str(), job.v1_only };
	char err[256];

	if (torrent_make(job.path.c_str(), &opts, job.out_file.c_str(), err, sizeof(err)) < 0)
		job.error = err[0] ? err : "cannot make the torrent";
}

void maker_thread(std::shared_ptr<maker_shared> shared)
{
	std::unique_lock<std::mutex> held(shared->lock);

	for (;;) {
		shared->wake.wait(held, [&] { return shared->stopping || !shared->todo.empty(); });
		if (shared->stopping)
			return;
		make_job job = std::move(shared->todo.front());
		shared->todo.pop_front();
		held.unlock();
		make_one(job);
		held.lock();
		shared->done.push_back(std::move(job));
		uint64_t one = 1;
		if (write(shared->fd, &one, sizeof(one)) < 0)
			continue;
	}
}

} // namespace

struct torrent_maker {
	std::shared_ptr<maker_shared> shared;
};

extern "C" {

torrent_maker *torrent_maker_new(char *err, size_t err_len)
{
	try {
		auto m = std::make_unique<torrent_maker>();
		m->shared = std::make_shared<maker_shared>();
		m->shared->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (m->shared->fd < 0) {
			set_error(err, err_len, std::strerror(errno));
			return nullptr;
		}
		std::thread(maker_thread, m->shared).detach();
		return m.release();
	} catch (const std::exception &e) {
		set_error(err, err_len, e.what());
	} catch (...) {
		set_error(err, err_len, "cannot start the torrent maker");
	}
	return nullptr;
}

int torrent_maker_fd(const torrent_maker *m)
{
	return m->shared->fd;
}

int torrent_maker_queue(torrent_maker *m, const char *path, const torrent_make_options *opts, const char *out_file,
			char *err, size_t err_len)
{
	try {
		make_job job;
		job.path = path;
		job.out_file = out_file;
		job.tracker = opts->tracker ? opts->tracker : "";
		job.web_seed = opts->web_seed ? opts->web_seed : "";
		job.v1_only = opts->v1_only;
		std::lock_guard<std::mutex> held(m->shared->lock);
		m->shared->todo.push_back(std::move(job));
		m->shared->wake.notify_one();
		return 0;
	} catch (const std::exception &e) {
		set_error(err, err_len, e.what());
	} catch (...) {
		set_error(err, err_len, "cannot queue the torrent");
	}
	return -1;
}

void torrent_maker_results(torrent_maker *m, torrent_made_fn *fn, void *arg)
{
	try {
		uint64_t count;
		std::deque<make_job> done;
		if (read(m->shared->fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
			return;
		{
			std::lock_guard<std::mutex> held(m->shared->lock);
			done.swap(m->shared->done);
		}
		for (const make_job &job : done)
			fn(arg, job.path.c_str(), job.out_file.c_str(), job.error.empty() ? nullptr : job.error.c_str());
	} catch (...) {
		// Results lost to a failed allocation are made again at the next scan.
	}
}

void torrent_maker_free(torrent_maker *m)
{
	if (m == nullptr)
		return;
	try {
		std::lock_guard<std::mutex> held(m->shared->lock);
		m->shared->stopping = true;
		m->shared->todo.clear();
		m->shared->wake.notify_one();
	} catch (...) {
		// The thread then ends with the process.
	}
	delete m;
}

} // extern "C"
