/* Upload with a progress bar. The form works without this script (a plain multipart post to
   the page's own address); with it, the file goes to the native API through XMLHttpRequest,
   whose upload events drive the <progress> element, with the CSRF token in X-CSRF-Token.
   A new table is first created through the API. Success opens the version's report; a refused
   file shows the refusal here, naming rows and columns. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-upload]");
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var slug = form.getAttribute("data-slug");
  var csrf = form.getAttribute("data-csrf");
  var select = form.querySelector("select[name=resource]");
  var newName = form.querySelector("[data-new-resource]");
  var fileInput = form.querySelector("input[type=file]");
  var schemaInput = form.querySelector("textarea[name=schema]");
  var box = form.querySelector("[data-progress]");
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  var errorBox = document.getElementById("upload-error");
  var button = document.getElementById("upload-button");
  var api = "/api/v1/datasets/" + encodeURIComponent(slug);
  var progressEvents = 0;

  function toggleNewName() { if (newName) { newName.hidden = select.value !== "new"; } }
  select.addEventListener("change", toggleNewName);
  toggleNewName();

  function megabytes(bytes) { return (bytes / 1048576).toFixed(1) + " MB"; }

  function showError(message, errors) {
    errorBox.textContent = "";
    var p = document.createElement("p");
    p.textContent = message;
    errorBox.appendChild(p);
    if (errors && errors.length) {
      var list = document.createElement("ul");
      list.className = "error-list";
      errors.slice(0, 50).forEach(function (e) {
        var item = document.createElement("li");
        var where = [];
        if (e.row !== undefined && e.row !== null) { where.push("row " + e.row); }
        if (e.column) { where.push("column " + e.column); }
        if (e.loc && !where.length) { where.push(e.loc.join(".")); }
        var text = String(e.message || e.type || "");
        /* The reader's messages repeat the row ("Row 3: ..."); say it once. */
        if (e.row !== undefined && e.row !== null) { text = text.replace("Row " + e.row + ": ", ""); }
        item.textContent = (where.length ? where.join(", ") + ": " : "") + text;
        list.appendChild(item);
      });
      errorBox.appendChild(list);
    }
    var tail = document.createElement("p");
    tail.textContent = "Nothing changed: the dataset keeps serving its previous version.";
    errorBox.appendChild(tail);
    errorBox.hidden = false;
    status.textContent = "";
    box.hidden = true;
    finish();
  }

  function finish() {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }

  function readError(xhr) {
    try {
      var body = JSON.parse(xhr.responseText);
      return { message: body.message || ("The server answered " + xhr.status + "."), errors: body.errors || [] };
    } catch (_e) {
      return { message: "The server answered " + xhr.status + ".", errors: [] };
    }
  }

  function createResource(file) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", api + "/resources");
      xhr.setRequestHeader("Content-Type", "application/json");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      var dot = file.name.lastIndexOf(".");
      var stem = dot > 0 ? file.name.slice(0, dot) : file.name;
      var name = (form.querySelector("input[name=new_resource_name]").value || "").trim() || stem || file.name;
      xhr.onload = function () {
        if (xhr.status === 201) { resolve(JSON.parse(xhr.responseText)); } else { reject(readError(xhr)); }
      };
      xhr.onerror = function () { reject({ message: "The connection failed; check it and try again.", errors: [] }); };
      xhr.send(JSON.stringify({ name: name.slice(0, 300), format: dot > 0 ? file.name.slice(dot + 1).toUpperCase().slice(0, 40) : "" }));
    });
  }

  function upload(resource, file) {
    var data = new FormData();
    data.append("file", file, file.name);
    if (schemaInput && schemaInput.value.trim()) { data.append("schema", schemaInput.value); }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", api + "/resources/" + resource.id + "/upload");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.upload.addEventListener("progress", function (event) {
      progressEvents += 1;
      form.setAttribute("data-progress-events", String(progressEvents));
      if (!event.lengthComputable) { bar.removeAttribute("value"); return; }
      var percent = Math.round((event.loaded / event.total) * 100);
      bar.value = percent;
      bar.textContent = percent + "%";
      form.setAttribute("data-progress-max", String(Math.max(percent, Number(form.getAttribute("data-progress-max") || 0))));
      status.textContent = "Uploading: " + percent + "% (" + megabytes(event.loaded) + " of " + megabytes(event.total) + ")";
    });
    xhr.upload.addEventListener("load", function () {
      bar.value = 100;
      status.textContent = "Uploaded. Checking and loading the table…";
    });
    xhr.onload = function () {
      if (xhr.status === 201) {
        var body = JSON.parse(xhr.responseText);
        status.textContent = "Loaded version " + body.version + ": " + body.row_count + " rows. Opening its report…";
        window.location.assign("/datasets/" + encodeURIComponent(slug) + "/upload?resource=" +
          body.resource_id + "&version=" + body.version + "#upload-result");
        return;
      }
      var problem = readError(xhr);
      showError(problem.message, problem.errors);
    };
    xhr.onerror = function () { showError("The connection failed during the upload; try again.", []); };
    xhr.send(data);
  }

  form.addEventListener("submit", function (event) {
    var file = fileInput.files && fileInput.files[0];
    if (!file) { return; }  /* the browser's own "required" message */
    event.preventDefault();
    errorBox.hidden = true;
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    box.hidden = false;
    bar.value = 0;
    progressEvents = 0;
    status.textContent = "Starting the upload…";
    var chosen = select.value === "new" ? createResource(file) : Promise.resolve({ id: select.value });
    chosen.then(function (resource) {
      if (select.value === "new") {
        /* A retry goes to the table just made, not to another new one. */
        var option = document.createElement("option");
        option.value = String(resource.id);
        option.textContent = resource.name + " (no data yet)";
        select.insertBefore(option, select.lastElementChild);
        select.value = String(resource.id);
        toggleNewName();
      }
      upload(resource, file);
    }, function (problem) { showError(problem.message, problem.errors); });
  });
})();
