# ctest include_directions_fixture: scripts/check_includes.py must fail on the fixture tree
# tests/data/include_check/ (exit 1) with exactly its four violations, one line each.
# cmake -DPYTHON=... -DSCRIPT=... -DROOT=... -P tests/check_includes_fixture.cmake
execute_process(COMMAND ${PYTHON} ${SCRIPT} ${ROOT} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "check_includes.py ${ROOT} => exit ${rc}\n${out}${err}")
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "expected exit status 1 (violations found), got '${rc}'")
endif()
set(expected
    "src/prefrl/core/util.h:3: includes module prefs, which module core may not include"
    "src/prefrl/extra/: module extra has no prefrl_module(extra ...)"
    "src/prefrl/server/page.cc:4: includes module app, which module server may not include"
    "src/prefrl/server/page.cc:5: includes <sqlite3.h>, which only module prefs may include")
foreach(line IN LISTS expected)
  string(FIND "${out}" "${line}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "missing violation: ${line}")
  endif()
endforeach()
string(REGEX MATCHALL "\n" newlines "${out}")
list(LENGTH newlines n)
if(NOT n EQUAL 4)
  message(FATAL_ERROR "expected 4 lines (one per violation), got ${n}")
endif()
