// The shim over libtorrent-rasterbar 2.0: C in, C out (shim.h). Nothing
// here may throw across the boundary, so each entry point catches all.
#include "protocols/torrent/shim.h"

#include <libtorrent/add_torrent_params.hpp>
#include <libtorrent/alert_types.hpp>
#include <libtorrent/create_torrent.hpp>
#include <libtorrent/session.hpp>
#include <libtorrent/settings_pack.hpp>
#include <libtorrent/torrent_info.hpp>
#include <libtorrent/torrent_status.hpp>

#include <sys/eventfd.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

struct torrent_session {
	std::unique_ptr<lt::session> session;
	std::map<std::string, lt::torrent_handle> handles;	// by v1 infohash, hex
	std::map<std::string, torrent_figures> figures;
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

void record_figures(torrent_session *s, const lt::state_update_alert *update)
{
	for (const lt::torrent_status &st : update->status) {
		torrent_figures f{};
		std::string hash = hex_of(st.info_hashes.v1);

		copy_text(f.info_hash, sizeof(f.info_hash), hash);
		copy_text(f.state, sizeof(f.state), (st.flags & lt::torrent_flags::paused) ? "paused" : state_name(st.state));
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

void handle_alert(torrent_session *s, const lt::alert *a, torrent_alert_fn *fn, void *arg)
{
	if (const auto *update = lt::alert_cast<lt::state_update_alert>(a)) {
		record_figures(s, update);
		return;
	}
	if (const auto *added = lt::alert_cast<lt::add_torrent_alert>(a)) {
		if (!added->error && added->params.ti)
			s->handles[hex_of(added->params.ti->info_hashes().v1)] = added->handle;
	}
	fn(arg, level_of(a), a->message().c_str());
}

std::string parent_of(const std::string &path)
{
	std::string::size_type slash = path.find_last_of('/');

	return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

} // namespace

extern "C" {

torrent_session *torrent_session_new(const torrent_session_options *opts, int notify_fd, char *err, size_t err_len)
{
	try {
		auto s = std::make_unique<torrent_session>();
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

int torrent_session_add(torrent_session *s, const char *torrent_file, const char *save_dir, char info_hash[41],
			char *name, size_t name_len, char *err, size_t err_len)
{
	try {
		lt::add_torrent_params atp;
		atp.ti = std::make_shared<lt::torrent_info>(std::string(torrent_file));
		atp.save_path = save_dir;
		atp.flags |= lt::torrent_flags::seed_mode;
		atp.flags &= ~(lt::torrent_flags::paused | lt::torrent_flags::auto_managed);
		copy_text(info_hash, 41, hex_of(atp.ti->info_hashes().v1));
		copy_text(name, name_len, atp.ti->name());
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

int torrent_session_stop(torrent_session *s, int done_fd)
{
	std::unique_ptr<torrent_session> owned(s);

	try {
		owned->session->set_alert_notify([] {});
		auto proxy = std::make_shared<lt::session_proxy>(owned->session->abort());
		owned.reset();
		// The proxy's destructor waits for libtorrent's threads: not on
		// the loop's.
		std::thread([proxy, done_fd]() mutable {
			proxy.reset();
			uint64_t one = 1;
			if (write(done_fd, &one, sizeof(one)) < 0)
				return;
		}).detach();
		return 0;
	} catch (...) {
		owned.reset();
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
