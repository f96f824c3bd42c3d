using System.Text.Json;
using System.Text.Json.Nodes;
using RetriBooru.Data;
using RetriBooru.Modeling;
using RetriBooru.Modeling.Clip;
using RetriBooru.Modeling.Tokenizers;
using RetriBooru.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace RetriBooru.Weights;

/// <summary>
/// Saves and loads <see cref="DiffusionModel"/>s in the two published layouts:
/// <list type="bullet">
/// <item>a diffusers folder: <c>model_index.json</c>, <c>unet/</c>, <c>vae/</c>, <c>text_encoder/</c> (each config.json +
/// safetensors), <c>tokenizer/</c> (CLIP vocab.json + merges.txt, or our tags.json), <c>scheduler/</c>;</item>
/// <item>a single original-LDM safetensors file (<c>model.diffusion_model.*</c>, <c>first_stage_model.*</c>,
/// <c>cond_stage_model.transformer.*</c>). Files we write carry the model config and tag vocabulary in the header metadata.</item>
/// </list>
/// Loading is strict: missing, unexpected and mis-shaped keys are reported in a <see cref="WeightLoadException"/>.
/// </summary>
public static class ModelStore
{
    public const string UnetWeights = "diffusion_pytorch_model.safetensors";
    public const string TextEncoderWeights = "model.safetensors";
    const string ConfigMetadataKey = "retribooru.config";
    const string TagsMetadataKey = "retribooru.tags";

    static string WeightsFileName(string component) => component == "text_encoder" ? TextEncoderWeights : UnetWeights;

    public static void SaveDiffusers(DiffusionModel model, string dir)
    {
        Directory.CreateDirectory(dir);
        var index = new JsonObject
        {
            ["_class_name"] = "StableDiffusionPipeline",
            ["unet"] = new JsonArray("diffusers", "UNet2DConditionModel"),
            ["text_encoder"] = new JsonArray("transformers", "CLIPTextModel"),
            ["tokenizer"] = new JsonArray("transformers", "CLIPTokenizer"),
            ["scheduler"] = new JsonArray("diffusers", "DDIMScheduler"),
            ["retribooru"] = JsonSerializer.SerializeToNode(model.Config, WorkbenchJson.Lines),
        };
        if (model.Vae is not null) index["vae"] = new JsonArray("diffusers", "AutoencoderKL");
        if (model.Tokenizer is TagTokenizer) index["tokenizer"] = new JsonArray("retribooru", "TagTokenizer");
        AtomicFile.WriteAllText(Path.Combine(dir, "model_index.json"), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        foreach (var (name, module) in model.Components())
        {
            var folder = Path.Combine(dir, name);
            Directory.CreateDirectory(folder);
            string config = module switch
            {
                UNet2DConditionModel u => DiffusersConfigJson.Write(u.Config),
                AutoencoderKL v => DiffusersConfigJson.Write(v.Config),
                ClipTextModel t => DiffusersConfigJson.Write(t.Config),
                _ => throw new InvalidOperationException(name),
            };
            AtomicFile.WriteAllText(Path.Combine(folder, "config.json"), config);
            SafeTensors.Save(Path.Combine(folder, WeightsFileName(name)), module.state_dict(), new Dictionary<string, string> { ["format"] = "pt" });
        }
        model.Tokenizer.Save(Path.Combine(dir, "tokenizer"));
        Directory.CreateDirectory(Path.Combine(dir, "scheduler"));
        AtomicFile.WriteAllText(Path.Combine(dir, "scheduler", "scheduler_config.json"), DiffusersConfigJson.Write(model.Config.Schedule));
    }

    /// <summary>Loads a diffusers-layout folder (ours, or a published SD1.x one). Without a <c>vae/</c> folder the model works in pixel space.</summary>
    public static DiffusionModel LoadDiffusers(string dir, Device? device = null, bool strict = true)
    {
        TorchRuntime.EnsureLoaded();
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: model folder not found");
        var ours = ReadOurConfig(dir);
        var unet = DiffusersConfigJson.ReadUnet(Path.Combine(dir, "unet", "config.json"));
        var vaeDir = Path.Combine(dir, "vae");
        var vae = Directory.Exists(vaeDir) ? DiffusersConfigJson.ReadVae(Path.Combine(vaeDir, "config.json")) : null;
        var text = DiffusersConfigJson.ReadTextEncoder(Path.Combine(dir, "text_encoder", "config.json"));
        var schedulePath = Path.Combine(dir, "scheduler", "scheduler_config.json");
        var schedule = File.Exists(schedulePath) ? DiffusersConfigJson.ReadSchedule(schedulePath) : new ScheduleConfig();
        var tokenizer = LoadTokenizer(Path.Combine(dir, "tokenizer"), text.MaxPositionEmbeddings);
        // Pixel-space folders without our index: the patch size follows from the U-Net's input channels (3 P^2).
        int patch = ours?.PatchSize ?? (vae is null ? Math.Max(1, (int)Math.Round(Math.Sqrt(unet.InChannels / 3.0))) : 1);
        var config = new ModelConfig
        {
            Name = ours?.Name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir))),
            Unet = unet,
            Vae = vae,
            TextEncoder = text,
            Tokenizer = tokenizer is TagTokenizer ? TokenizerKind.Tags : TokenizerKind.ClipBpe,
            Schedule = schedule,
            PatchSize = patch,
            ImageSize = ours?.ImageSize ?? (vae is null ? unet.SampleSize * patch : unet.SampleSize * vae.DownsampleFactor),
        };
        var model = new DiffusionModel(config, tokenizer, device);
        try
        {
            foreach (var (name, module) in model.Components())
            {
                var path = WeightsPath(Path.Combine(dir, name), WeightsFileName(name));
                var tensors = UpgradeDeprecatedKeys(SafeTensors.Load(path));
                try { StateDictLoader.Load(module, tensors, path, strict); }
                finally { foreach (var t in tensors.Values) t.Dispose(); }
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }

    /// <summary>
    /// Published SD1.x VAE folders still use diffusers' pre-0.14 attention names (query, key, value, proj_attn);
    /// diffusers renames them on load, and so do we.
    /// </summary>
    public static Dictionary<string, Tensor> UpgradeDeprecatedKeys(Dictionary<string, Tensor> tensors)
    {
        (string Old, string New)[] renames = [(".attentions.0.query.", ".attentions.0.to_q."), (".attentions.0.key.", ".attentions.0.to_k."),
            (".attentions.0.value.", ".attentions.0.to_v."), (".attentions.0.proj_attn.", ".attentions.0.to_out.0.")];
        if (!tensors.Keys.Any(k => renames.Any(r => k.Contains(r.Old, StringComparison.Ordinal)))) return tensors;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, value) in tensors)
        {
            var renamed = key;
            foreach (var (o, n) in renames) renamed = renamed.Replace(o, n, StringComparison.Ordinal);
            // Some old files store these 1x1 projections as [C, C, 1, 1] convolutions.
            result[renamed] = renamed != key && value.dim() == 4 ? value.flatten(1) : value;
        }
        return result;
    }

    /// <summary>Loads a diffusers folder's weights into an existing model of the same structure (strict).</summary>
    public static void LoadWeightsInto(DiffusionModel model, string dir)
    {
        foreach (var (name, module) in model.Components())
        {
            var path = WeightsPath(Path.Combine(dir, name), WeightsFileName(name));
            var tensors = UpgradeDeprecatedKeys(SafeTensors.Load(path));
            try { StateDictLoader.Load(module, tensors, path); }
            finally { foreach (var t in tensors.Values) t.Dispose(); }
        }
    }

    static string WeightsPath(string folder, string fileName)
    {
        var path = Path.Combine(folder, fileName);
        if (File.Exists(path)) return path;
        var fp16 = Path.Combine(folder, Path.GetFileNameWithoutExtension(fileName) + ".fp16.safetensors");
        if (File.Exists(fp16)) return fp16;
        throw new FileNotFoundException($"{path}: weights not found (only safetensors are read; convert .bin files first)", path);
    }

    static ModelConfig? ReadOurConfig(string dir)
    {
        var path = Path.Combine(dir, "model_index.json");
        if (!File.Exists(path)) return null;
        ModelConfig? config;
        try { config = DiffusersConfigJson.Read(path)["retribooru"]?.Deserialize<ModelConfig>(WorkbenchJson.Lines); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: field 'retribooru' is not a model config ({e.Message})", e); }
        if (config is not null) ConfigBounds.Check(config, $"{path} (retribooru)");
        return config;
    }

    public static IPromptTokenizer LoadTokenizer(string folder, int maxLength)
    {
        if (File.Exists(Path.Combine(folder, TagTokenizer.FileName))) return TagTokenizer.Load(folder);
        if (File.Exists(Path.Combine(folder, "vocab.json"))) return ClipBpeTokenizer.Load(folder, Math.Min(77, maxLength));
        throw new FileNotFoundException($"{folder}: no tokenizer (expected vocab.json + merges.txt or {TagTokenizer.FileName})");
    }

    /// <summary>Writes one original-LDM-layout safetensors file; the config and tag vocabulary go into the header metadata.</summary>
    public static void SaveSingleFile(DiffusionModel model, string path)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using var scope = NewDisposeScope();
        foreach (var (name, module) in model.Components())
            foreach (var (key, value) in module.state_dict())
            {
                var ldm = LdmKeyMap.Map(name, key, model.Config);
                tensors.Add(new(ldm.Key, ldm.Conv1x1 ? value.unsqueeze(-1).unsqueeze(-1) : value));
            }
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            [ConfigMetadataKey] = JsonSerializer.Serialize(model.Config, WorkbenchJson.Lines),
        };
        if (model.Tokenizer is TagTokenizer tags) metadata[TagsMetadataKey] = tags.ToJson();
        SafeTensors.Save(path, tensors, metadata);
    }

    /// <summary>
    /// Loads a single-file LDM checkpoint. The config comes from the file's metadata (files we wrote) or
    /// <paramref name="config"/> (default sd15 for published checkpoints); a CLIP tokenizer folder is needed
    /// unless the file carries a tag vocabulary. Keys outside the three component prefixes (EMA copies,
    /// schedule buffers) are ignored.
    /// </summary>
    public static DiffusionModel LoadSingleFile(string path, ModelConfig? config = null, string? tokenizerDir = null, Device? device = null, bool strict = true)
    {
        TorchRuntime.EnsureLoaded();
        using var file = SafeTensorsFile.Open(path);
        if (file.Metadata.TryGetValue(ConfigMetadataKey, out var configJson))
        {
            try { config = JsonSerializer.Deserialize<ModelConfig>(configJson, WorkbenchJson.Lines); }
            catch (JsonException e) { throw new InvalidDataException($"{path}: metadata '{ConfigMetadataKey}' is not a model config ({e.Message})", e); }
        }
        config ??= ModelConfigs.Sd15;
        ConfigBounds.Check(config, $"{path} (metadata '{ConfigMetadataKey}')");
        IPromptTokenizer tokenizer = file.Metadata.TryGetValue(TagsMetadataKey, out var tagsJson)
            ? TagTokenizer.FromJson(tagsJson, $"{path} metadata")
            : tokenizerDir is not null ? LoadTokenizer(tokenizerDir, config.TextEncoder.MaxPositionEmbeddings)
            : throw new ArgumentException($"{path}: the checkpoint has no tokenizer; pass the SD tokenizer folder (vocab.json + merges.txt)");
        if (config.Vae is not null && !file.Entries.Keys.Any(k => k.StartsWith(LdmKeyMap.VaePrefix, StringComparison.Ordinal)))
            throw new InvalidDataException($"{path}: config '{config.Name}' has a VAE but the file has no {LdmKeyMap.VaePrefix}* keys");

        var model = new DiffusionModel(config, tokenizer, device);
        try
        {
            foreach (var (name, module) in model.Components())
            {
                var prefix = LdmKeyMap.PrefixOf(name);
                var source = new Dictionary<string, Tensor>(StringComparer.Ordinal);
                var mapped = new HashSet<string>(StringComparer.Ordinal);
                try
                {
                    foreach (var key in module.state_dict().Keys)
                    {
                        var ldm = LdmKeyMap.Map(name, key, config);
                        // Early SD checkpoints saved CLIP without the text_model level (cond_stage_model.transformer.embeddings...).
                        if (!file.Entries.ContainsKey(ldm.Key) && name == "text_encoder")
                            ldm = ldm with { Key = LdmKeyMap.TextPrefix + key["text_model.".Length..] };
                        if (!file.Entries.ContainsKey(ldm.Key)) continue;
                        mapped.Add(ldm.Key);
                        var tensor = file.Read(ldm.Key);
                        if (ldm.Conv1x1 && tensor.dim() == 4 && tensor.shape[2] == 1 && tensor.shape[3] == 1)
                        {
                            var squeezed = tensor.flatten(1);
                            tensor.Dispose();
                            tensor = squeezed;
                        }
                        source[key] = tensor;
                    }
                    foreach (var key in file.Entries.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && !mapped.Contains(k)))
                        source[key[prefix.Length..]] = empty(0);
                    StateDictLoader.Load(module, source, $"{path} ({name})", strict);
                }
                finally
                {
                    foreach (var t in source.Values) t.Dispose();
                }
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return model;
    }
}
