/* Every endpoint csvup calls, from the services' public documentation. Adding an
 * endpoint is adding a row: core.c registers one Lua function per row. */
#include <string.h>

#include "endpoints.h"

enum { METRIKA, CARROTQUEST };

#define MIB (INT64_C(1) << 20)
#define GIB (INT64_C(1) << 30)
/* The documented limits ("1 Гб", "30 Мбайт") are read as binary units. No
 * limit is documented for expenses and user parameters; Metrica's 1 GB upload
 * limit is applied to them too, so that an oversized file fails before sending. */
#define METRIKA_FILE_LIMIT GIB
#define CARROTQUEST_FILE_LIMIT (30 * MIB)

#define COUNTER "/management/v1/counter/{counter}"
#define CDP "/cdp/api/v1/counter/{counter}"
#define PAGE "limit,offset"

/* Metrica allows 3 parallel requests per user; Carrot quest publishes no such
 * limit (its rate advice is kept by the Lua client). */
const struct service csvup_services[] = {
    [METRIKA] = { "metrika", "https://api-metrika.yandex.net", "OAuth", "ulogin", 3 },
    [CARROTQUEST] = { "carrotquest", "https://api.carrotquest.io", "Token", "", 0 },
};
const size_t csvup_service_count = sizeof csvup_services / sizeof csvup_services[0];

const struct endpoint csvup_endpoints[] = {
    /* offline conversions */
    { "upload_offline_conversions", METRIKA, "POST", COUNTER "/offline_conversions/upload",
      "comment,type,client_id_type", BODY_MULTIPART, METRIKA_FILE_LIMIT },
    { "offline_conversion_uploadings", METRIKA, "GET", COUNTER "/offline_conversions/uploadings",
      PAGE, BODY_NONE, 0 },
    { "offline_conversion_uploading", METRIKA, "GET", COUNTER "/offline_conversions/uploading/{id}",
      "", BODY_NONE, 0 },
    { "upload_calls", METRIKA, "POST", COUNTER "/offline_conversions/upload_calls",
      "comment,new_goal_name", BODY_MULTIPART, METRIKA_FILE_LIMIT },
    { "calls_uploadings", METRIKA, "GET", COUNTER "/offline_conversions/calls_uploadings",
      PAGE, BODY_NONE, 0 },
    { "calls_uploading", METRIKA, "GET", COUNTER "/offline_conversions/calls_uploading/{id}",
      "", BODY_NONE, 0 },
    { "visit_join_threshold", METRIKA, "GET", COUNTER "/offline_conversions/visit_join_threshold",
      "", BODY_NONE, 0 },
    { "calls_visit_join_threshold", METRIKA, "GET", COUNTER "/offline_conversions/calls_visit_join_threshold",
      "", BODY_NONE, 0 },
    { "enable_extended_threshold", METRIKA, "POST", COUNTER "/offline_conversions/extended_threshold",
      "", BODY_NONE, 0 },
    { "disable_extended_threshold", METRIKA, "DELETE", COUNTER "/offline_conversions/extended_threshold",
      "", BODY_NONE, 0 },
    { "enable_calls_extended_threshold", METRIKA, "POST", COUNTER "/offline_conversions/calls_extended_threshold",
      "", BODY_NONE, 0 },
    { "disable_calls_extended_threshold", METRIKA, "DELETE", COUNTER "/offline_conversions/calls_extended_threshold",
      "", BODY_NONE, 0 },
    /* expenses */
    { "upload_expenses", METRIKA, "POST", COUNTER "/expense/upload",
      "comment,provider", BODY_MULTIPART, METRIKA_FILE_LIMIT },
    { "delete_expenses", METRIKA, "POST", COUNTER "/expense/delete",
      "comment,provider", BODY_MULTIPART, METRIKA_FILE_LIMIT },
    { "delete_expense_line", METRIKA, "POST", COUNTER "/expense/delete_single",
      "date,UTMSource,UTMMedium,UTMCampaign,UTMTerm,UTMContent,trafficSource,trafficSourceDetail,comment,provider",
      BODY_NONE, 0 },
    { "expense_uploadings", METRIKA, "GET", COUNTER "/expense/uploadings", PAGE, BODY_NONE, 0 },
    { "expense_uploading", METRIKA, "GET", COUNTER "/expense/uploading/{id}", "", BODY_NONE, 0 },
    /* user parameters: upload, then confirm */
    { "upload_user_params", METRIKA, "POST", COUNTER "/user_params/uploadings/upload",
      "action", BODY_MULTIPART, METRIKA_FILE_LIMIT },
    { "confirm_user_params", METRIKA, "POST", COUNTER "/user_params/uploading/{id}/confirm",
      "", BODY_JSON, 0 },
    { "edit_user_params_uploading", METRIKA, "PUT", COUNTER "/user_params/uploading/{id}", "", BODY_JSON, 0 },
    { "user_params_uploadings", METRIKA, "GET", COUNTER "/user_params/uploadings", PAGE, BODY_NONE, 0 },
    { "user_params_uploading", METRIKA, "GET", COUNTER "/user_params/uploading/{id}", "", BODY_NONE, 0 },
    /* CRM */
    { "upload_crm_simple_orders", METRIKA, "POST", CDP "/data/simple_orders",
      "merge_mode,delimiter_type", BODY_MULTIPART, METRIKA_FILE_LIMIT },
    { "upload_crm_contacts", METRIKA, "POST", CDP "/data/contacts/csv",
      "merge_mode,columns_mapping,delimiter_type", BODY_MULTIPART, METRIKA_FILE_LIMIT },
    { "upload_crm_orders", METRIKA, "POST", CDP "/data/orders/csv",
      "merge_mode,columns_mapping,delimiter_type", BODY_MULTIPART, METRIKA_FILE_LIMIT },
    { "crm_uploadings", METRIKA, "GET", CDP "/last_uploadings", "limit,datetime_offset,source", BODY_NONE, 0 },
    /* goals: a JavaScript-event goal's identifier is what offline conversions name in Target */
    { "goals", METRIKA, "GET", COUNTER "/goals", "", BODY_NONE, 0 },
    { "create_goal", METRIKA, "POST", COUNTER "/goals", "", BODY_JSON, 0 },
    /* Carrot quest */
    { "import_users", CARROTQUEST, "POST", "/users/import", "", BODY_MULTIPART, CARROTQUEST_FILE_LIMIT },
};
const size_t csvup_endpoint_count = sizeof csvup_endpoints / sizeof csvup_endpoints[0];

const struct endpoint *endpoint_find(const char *name)
{
    size_t i;
    for (i = 0; name && i < csvup_endpoint_count; i++)
        if (strcmp(csvup_endpoints[i].name, name) == 0)
            return &csvup_endpoints[i];
    return NULL;
}
